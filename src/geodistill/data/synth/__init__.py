"""The procedural city world written in VIGOR's on-disk format (stage synth): writer.write_world."""
