"""Training: scikit-learn pipelines converted to ONNX with a parity check."""

from mlops_lite.training.classifier import ALGORITHMS, TrainedModel, TrainingSpec, train_classifier
from mlops_lite.training.recipe import TrainingRecipe
from mlops_lite.training.service import MODEL_ARTIFACT, SIGNATURE_ARTIFACT, Training, TrainingResult

__all__ = ["ALGORITHMS", "MODEL_ARTIFACT", "SIGNATURE_ARTIFACT", "TrainedModel", "Training",
           "TrainingRecipe", "TrainingResult", "TrainingSpec", "train_classifier"]
