"""nodegraph-threed: point clouds and meshes for nodegraph — a tiny trained text-to-3D model, meshing, files, renders.

Library modules (plain torch / numpy, no engine imports, usable on their own):

    points.py      POINT_CLOUD / MESH layouts, checks (empty, NaN, degenerate, limits), point ↔ latent mapping
    shapes.py      the procedural shape world: 6 solids × 8 colours × 3 sizes × 3 stretches, captions,
                   surface sampling, the held-out combinations
    text.py        the caption vocabulary and the one-hot CONDITIONING {"words": (B, L, V)}
    denoiser.py    the point-set diffusion transformer (points as tokens, adaLN-Zero time + text conditioning)
    training.py    training it (v objective, cosine schedule) with the training kit; the model file format
    classifier.py  a PointNet shape classifier (the benchmark's judge) and its training
    metrics.py     Chamfer distance, colour naming, shape scoring
    meshing.py     points → mesh (distance-field occupancy + marching cubes), mesh → points sampling
    mesh_files.py  PLY / OBJ / GLB writing and reading (trimesh), with limits and clear errors
    render.py      turntable renders of points or meshes to IMAGE batches (pure torch, depth shading)
    lift.py        image + depth → coloured points (the image → 3D path)

Adapters: ``nodes.py`` (nodes and plugin hooks; entry point ``threed`` in group ``nodegraph``).
Models: ``models/text_to_points.safetensors`` (the shipped text-to-points model) and
``benchmarks/shape_classifier.safetensors`` (the benchmark's classifier).
"""

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
#: The plugin's shipped models; searched after the model folder "threed".
SHIPPED_MODELS = PACKAGE_ROOT.parent / "models"
