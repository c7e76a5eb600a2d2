"""kNN-CLIP: training-free continual segmentation by retrieval (Gui et al.)."""
