"""Datasets: the synthetic world (synth/), VIGOR and KITTI readers, the sample table, BEV images, downloads."""
