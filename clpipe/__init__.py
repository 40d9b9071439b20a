"""clpipe: confident learning + Co-Teaching as Kubeflow Pipelines components."""

__version__ = "0.1.0"
