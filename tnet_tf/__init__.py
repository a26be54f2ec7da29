"""tnet-tf: TNet (Traversal Network) hard-attention image classification in Keras 3.

Public API:
- `TNet`, `TNetConfig`: the model and its configuration.
- `BaselineClassifier`, `BaselineConfig`: plain CNN baselines; both models
  answer one call and return one dict (`tnet_tf.models.ImageClassifier`).
- `presets`: the paper's models by name (`presets.get`, `presets.build`).
- `recipes`: the paper's experiments (preset + data + schedule) by name.
- `profiling`: parameters and multiply-adds per image.
- `release`: the authors' released checkpoints and the release's behaviour
  (`release.release_config`, `release.load_release_checkpoint`).
- `geometry`, `sampling`: grid cells and cell selection.
"""

from tnet_tf import geometry
from tnet_tf import presets
from tnet_tf import recipes
from tnet_tf import release
from tnet_tf import sampling
from tnet_tf.config import BaselineConfig
from tnet_tf.config import TNetConfig
from tnet_tf.config import apply_overrides
from tnet_tf.models import BaselineClassifier
from tnet_tf.models import TNet

__version__ = "0.1.0"
