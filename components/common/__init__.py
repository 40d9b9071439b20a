"""Code shared by the stages: storage, datasets, labels, errors, CLI and torch plumbing."""
