"""Figure layout: panels with titles in a grid, as one Pillow image."""

from typing import Sequence

from PIL import Image, ImageDraw

from cmt.vis import drawing

_MARGIN = 6
_BACKGROUND = (255, 255, 255)


def grid(panels: Sequence[Image.Image], titles: Sequence[str],
         columns: int, panel_width: int = 256) -> Image.Image:
  """Panels resized to `panel_width` (aspect kept), each under its title,
  `columns` per row, on white."""
  if len(panels) != len(titles):
    raise ValueError(f'{len(panels)} panels but {len(titles)} titles')
  if not panels:
    raise ValueError('a figure needs at least one panel')
  scale = panel_width / panels[0].width
  panel_height = max(1, round(panels[0].height * scale))
  title_height = max(12, panel_width // 14)
  columns = max(1, min(columns, len(panels)))
  rows = -(-len(panels) // columns)
  cell_w = panel_width + _MARGIN
  cell_h = panel_height + title_height + _MARGIN
  figure = Image.new('RGB', (columns * cell_w + _MARGIN,
                             rows * cell_h + _MARGIN), _BACKGROUND)
  draw = ImageDraw.Draw(figure)
  text_font = drawing.font(title_height - 3)
  for index, (panel, title) in enumerate(zip(panels, titles)):
    x = _MARGIN + (index % columns) * cell_w
    y = _MARGIN + (index // columns) * cell_h
    draw.text((x, y), title, fill=(0, 0, 0), font=text_font)
    figure.paste(panel.convert('RGB').resize(
        (panel_width, panel_height), Image.NEAREST), (x, y + title_height))
  return figure
