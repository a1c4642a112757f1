"""xlir: hybrid-batch training and LAReQA evaluation for multilingual retrieval encoders."""

__version__ = "0.1.0"
