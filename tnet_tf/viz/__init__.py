"""Pictures and tables of what TNet attended, and the accuracy-vs-FLOPs plot.

Every function takes the model's output dict (`TNet.__call__`) or the dict of
an exported serving endpoint (`tnet_tf.export`), as tensors or NumPy arrays:
both use the keys `logits` / `probabilities`, `attended_boxes`,
`attended_levels`, `attended_cells`, `attended_log_probs` and
`feature_weights`.

- `draw_attention`: the attended boxes drawn on one image as a uint8 array,
  one colour per level (`drawing`). The boxes are drawn with NumPy alone;
  matplotlib is needed only for text.
- `save_attention_png` / `attention_grid_png`: PNG pictures with a caption
  (top-k classes, each box's location probability) (`attention`).
- `location_probability_png`: each image with its most probable level-1
  cell outlined, beside a heat map of the location module's probabilities
  of every cell (takes the probabilities, not the output dict)
  (`location_map`).
- `accuracy_vs_flops_png`: accuracy against multiply-adds per image, one
  line per TNet over its location settings and one point per baseline, as
  the paper's Fig. 1b and Fig. 3 (`plots`).
- `attention_rows` / `attention_csv`: one CSV row per image with the
  attended cells and the probabilities of every cell of every grid at every
  level (`tables`).

matplotlib is imported only by the functions that draw text or plots, and
only through its object-oriented Agg canvas: no pyplot, no global backend.
"""

from tnet_tf.viz.attention import attention_grid_png
from tnet_tf.viz.attention import save_attention_png
from tnet_tf.viz.drawing import CAPTION_MARGIN
from tnet_tf.viz.drawing import DPI
from tnet_tf.viz.drawing import FONT_SIZE
from tnet_tf.viz.drawing import LEVEL_COLOURS
from tnet_tf.viz.drawing import LINE_HEIGHT
from tnet_tf.viz.drawing import OUTLINE_WIDTH
from tnet_tf.viz.drawing import box_pixels
from tnet_tf.viz.drawing import draw_attention
from tnet_tf.viz.drawing import level_colour
from tnet_tf.viz.drawing import to_uint8_image
from tnet_tf.viz.location_map import PROBABILITY_FLOOR
from tnet_tf.viz.location_map import location_probability_png
from tnet_tf.viz.outputs import outputs_for_image
from tnet_tf.viz.plots import accuracy_vs_flops_png
from tnet_tf.viz.tables import attention_csv
from tnet_tf.viz.tables import attention_rows
