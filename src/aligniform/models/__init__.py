"""Encoders onto the unit hypersphere.

Every encoder is an :class:`Encoder`: ``forward(x)`` returns L2-normalised
``(N, dim)`` embeddings and ``forward_features(x, layers)`` returns the
flattened features of named intermediate layers (``layer_names``), with
``default_eval_layer`` naming the one downstream evaluation should use.

=================  ==================  ===========================================  ===================
name               input side          layers                                       default eval layer
=================  ==================  ===========================================  ===================
``smallalexnet``   64 only             backbone (9408), fc6, fc7 (4096), output     fc7
``resnet18``       >= 8 (e.g. 32)      backbone (512), output                       backbone
``convnet``        >= 4 (e.g. 28, 8)   backbone (864), hidden (256), output         backbone
=================  ==================  ===========================================  ===================
"""

from .base import OUTPUT_LAYER, Encoder, L2Normalize, resolve_eval_layer
from .convnet import ConvNet
from .registry import MODELS, build_model
from .resnet import ResNet18
from .smallalexnet import SmallAlexNet

__all__ = [
    "MODELS",
    "OUTPUT_LAYER",
    "ConvNet",
    "Encoder",
    "L2Normalize",
    "ResNet18",
    "SmallAlexNet",
    "build_model",
    "resolve_eval_layer",
]
