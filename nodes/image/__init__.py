"""Image nodes: load, save (with the graph embedded), preview, grid, scale.

    pixels.py   library: PIL ↔ tensor conversions, PNG metadata, grid, resize (no engine imports)
    nodes.py    LoadImage, SaveImage, PreviewImage, ImageGrid, ImageScale
"""
