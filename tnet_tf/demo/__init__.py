"""The Megapixel-MNIST demo: TNet against two CNNs, end to end on a CPU.

`make demo` runs `run_demo`, the project's main job on its embedded data:

1. Generate Megapixel MNIST canvases in memory (`tnet_tf.data.megapixel_mnist`):
   train canvases, validation canvases (more canvases of the train split,
   held out for early stopping) and test canvases (the test split's digits).
2. Pretrain the tiny CNN backbone on single MNIST digits at random scales
   (the demo's stand-in for the ImageNet-pretrained backbones of the paper);
   all three models start from these weights.
3. Train, on the same canvases, each until its validation top-1 stops
   improving (early stopping, best epoch kept):
   - TNet (`megapixel_mnist_tnet`) at `locations` locations;
   - the same CNN on the canvas downscaled (antialiased) to the resolution
     where its multiply-adds match TNet's at `equal_flops_locations`;
   - the same CNN on the full-resolution canvas.
4. Evaluate TNet at every setting of `evaluation_locations` and both CNNs on
   the test canvases: top-1, TNet's localization (the fraction of canvases
   where an attended cell contains the digit's centre, beside its chance
   level), multiply-adds and ms per image in one table (`results.csv`,
   `results.json`, `table.txt`).
5. Export TNet as a SavedModel (one endpoint per location setting) and as
   a preset directory (`export/preset`, loaded by `TNet.from_preset`), draw the
   attended boxes and the location module's probability map of test
   canvases, and the accuracy-vs-multiply-adds plot.

Every step shows a progress bar. The working directory (default
`runs/demo`) holds, besides the files above, `pretrain/`, one training
folder per model (`tnet/`, `cnn_downscaled/`, `cnn_full/`, each with a
resumable backup while it trains, `checkpoints/best.keras` and
`checkpoints/final.keras`), `export/` and `figures/`.

The modules, in the order the demo uses them:

- `config`: `DemoConfig`, the `SMOKE` size, preset, file and row names.
- `data`: canvases, model inputs, datasets, the digit pretraining set.
- `training`: backbone pretraining, the models, the equal-multiply-adds
  resolution, `train` with early stopping.
- `localization_measures`: `centres_inside`, `attended_centre_fraction`,
  `chance_localization`, `localization`.
- `report`: the table's rows and columns, the claims, training lines and
  the result files.
- `pictures`: the attention, probability-map and accuracy pictures.
- `run`: `run_demo`, the steps in order.

The names callers use are importable from `tnet_tf.demo` itself.
"""

from tnet_tf.demo.config import CNN_DOWNSCALED
from tnet_tf.demo.config import CNN_FULL
from tnet_tf.demo.config import CNN_FULL_PRESET
from tnet_tf.demo.config import PRETRAIN_TEST_DIGITS
from tnet_tf.demo.config import PRETRAINED_WEIGHTS
from tnet_tf.demo.config import RESULTS_CSV
from tnet_tf.demo.config import RESULTS_JSON
from tnet_tf.demo.config import SMOKE
from tnet_tf.demo.config import SPLIT_SEEDS
from tnet_tf.demo.config import TABLE_TXT
from tnet_tf.demo.config import TNET
from tnet_tf.demo.config import TNET_PRESET
from tnet_tf.demo.config import DemoConfig
from tnet_tf.demo.data import Part
from tnet_tf.demo.data import canvas_dataset
from tnet_tf.demo.data import digit_pretraining_set
from tnet_tf.demo.data import generate_canvases
from tnet_tf.demo.data import generate_parts
from tnet_tf.demo.data import model_inputs
from tnet_tf.demo.data import training_data
from tnet_tf.demo.localization_measures import attended_centre_fraction
from tnet_tf.demo.localization_measures import centres_inside
from tnet_tf.demo.localization_measures import chance_localization
from tnet_tf.demo.localization_measures import localization
from tnet_tf.demo.pictures import accuracy_series
from tnet_tf.demo.pictures import draw_pictures
from tnet_tf.demo.report import TABLE_COLUMNS
from tnet_tf.demo.report import comparison
from tnet_tf.demo.report import evaluate_row
from tnet_tf.demo.report import evaluate_rows
from tnet_tf.demo.report import results_table
from tnet_tf.demo.report import summary_lines
from tnet_tf.demo.report import training_lines
from tnet_tf.demo.report import write_results
from tnet_tf.demo.run import run_demo
from tnet_tf.demo.training import build_cnn
from tnet_tf.demo.training import build_tnet
from tnet_tf.demo.training import cnn_runs
from tnet_tf.demo.training import equal_flops_resolution
from tnet_tf.demo.training import pretrain_backbone
from tnet_tf.demo.training import train
