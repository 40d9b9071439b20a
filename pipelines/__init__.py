"""The clpipe Kubeflow pipeline: definition, compiled YAML, configs, local and cluster runs."""
