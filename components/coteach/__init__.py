"""Co-Teaching stage: two 9-layer CNNs trained on the rows a confident-learning mask kept."""
