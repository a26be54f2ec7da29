"""One experiment's life: train, evaluate, profile, export, predict, draw.

The library behind the thin entry points of `experiments/`: each entry point
parses its flags, resolves a recipe (`tnet_tf.recipes.resolve`) and calls
one function here. One module per verb:

- `train`: `run_training` builds the recipe's model under a distribution
  strategy, restores an earlier stage's weights (`restore_from`), trains
  with `tnet_tf.training.fit` (default and mirrored strategies) or
  `tnet_tf.distributed.train_loop` (multi-worker, where Keras `fit` fails
  on TensorFlow 2.21), and saves `checkpoints/final.keras`; its steps
  (`fit_model` with early stopping, `save_final`, `training_summary`) are
  the demo's too.
- `evaluate`: `run_evaluation`, top-1 / top-5 (and multiply-adds) of one
  checkpoint at several location settings in one run; a CSV in
  `evaluation/`. `evaluate_setting` is one row's scores (also the demo's);
  `evaluate_anytime` a row of anytime inference (`--anytime_threshold`).
- `profile`: `run_profile`, parameters, multiply-adds, ms per image and
  peak memory per location setting, as the paper's Tables 1 and 2; and the
  command line of `python -m tnet_tf.profiling`.
- `export`: `run_export`, SavedModel (one endpoint per setting) and
  `.keras`.
- `predict`: `run_predict`, one image file -> top-k classes and a PNG of
  the attended boxes (`predictor`: the model loaded whatever its form;
  `image_files`: the files streamed through it; `predict_anytime`:
  anytime inference's rows).
- `visualize`: `run_visualize`, a grid of attention pictures of a split,
  the per-image CSV of attended cells and cell probabilities, and the
  accuracy-vs-FLOPs plot from evaluation CSVs.

Over shared pieces:

- `run_folder`: the run folder's paths, the experiment file, checkpoints.
- `models`: the resolved recipe, its model and input, the location
  settings a verb runs and one forward pass.
- `locations`: location settings as command-line text and table cells.
- `tables`: text tables and CSV files.
- `inference`: inference timing and peak memory.

Everything public is importable from `tnet_tf.experiment` itself. The
on-disk layout of a working directory is described in WORKSPACE.md.
"""

from tnet_tf.experiment.evaluate import evaluate_anytime
from tnet_tf.experiment.evaluate import evaluate_setting
from tnet_tf.experiment.evaluate import evaluation_table
from tnet_tf.experiment.evaluate import run_evaluation
from tnet_tf.experiment.export import run_export
from tnet_tf.experiment.inference import PeakMemory
from tnet_tf.experiment.inference import measure_inference
from tnet_tf.experiment.inference import peak_memory
from tnet_tf.experiment.locations import attended_locations
from tnet_tf.experiment.locations import format_locations
from tnet_tf.experiment.locations import parse_locations
from tnet_tf.experiment.models import build_model
from tnet_tf.experiment.models import compile_for_evaluation
from tnet_tf.experiment.models import location_settings
from tnet_tf.experiment.models import make_input
from tnet_tf.experiment.models import resolve_recipe
from tnet_tf.experiment.predict import read_class_names
from tnet_tf.experiment.predict import run_predict
from tnet_tf.experiment.predictor import load_predictor
from tnet_tf.experiment.profile import profile_table
from tnet_tf.experiment.profile import run_profile
from tnet_tf.experiment.run_folder import BEST_CHECKPOINT
from tnet_tf.experiment.run_folder import EVALUATION_DIR
from tnet_tf.experiment.run_folder import EXPERIMENT_FILE
from tnet_tf.experiment.run_folder import EXPORT_DIR
from tnet_tf.experiment.run_folder import FIGURES_DIR
from tnet_tf.experiment.run_folder import FINAL_CHECKPOINT
from tnet_tf.experiment.run_folder import PROFILE_DIR
from tnet_tf.experiment.run_folder import default_checkpoint
from tnet_tf.experiment.run_folder import load_checkpoint
from tnet_tf.experiment.run_folder import restore_weights
from tnet_tf.experiment.run_folder import write_experiment_file
from tnet_tf.experiment.tables import SETTING_COLUMNS
from tnet_tf.experiment.tables import format_table
from tnet_tf.experiment.tables import read_csv
from tnet_tf.experiment.tables import write_csv
from tnet_tf.experiment.train import LOOPS
from tnet_tf.experiment.train import TrainingResult
from tnet_tf.experiment.train import compile_for_training
from tnet_tf.experiment.train import fit_model
from tnet_tf.experiment.train import make_optimizers
from tnet_tf.experiment.train import run_training
from tnet_tf.experiment.train import save_final
from tnet_tf.experiment.train import training_summary
from tnet_tf.experiment.visualize import accuracy_vs_flops
from tnet_tf.experiment.visualize import run_visualize
