"""Self-distillation: occlusions of the student's view (occlusion.py) and the teacher-student loop."""
