"""Networks: timm backbones and decoders, the orientation network, G2SWeakly (g2s.py) and CCVPE (ccvpe.py)."""
