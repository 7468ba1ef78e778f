"""nodes.training -- datasets and evaluation for training nodegraph's own small models.

No engine imports outside nodes.py: the modules are usable and testable on their own.
Importing this package imports nothing; import the modules.

Map (docs/tiny_world.md has the world, the detector and its measured ceiling):

=====================  ======================================================================
world.py               The "tiny world": vocabularies (5 shapes, 10 colours, 2 sizes,
                       5 positions), ``SceneSpec``, seeded ``sample_scene`` with holdout rules
                       (``("green", "triangle")`` never in training) and
                       ``sample_held_out_scene``, the anti-aliased ``render``, ``caption``
                       templates and ``parse_caption``, and the deterministic ``TinyWorld``
                       dataset (index -> image, caption, scene).
world_detector.py      Reads images back into scene attributes: background and object colour
                       from pixel statistics, size and position from the object mask, shape
                       from a small CNN trained on world renders (cached in
                       ``models/detectors/``); ``score`` (per-attribute accuracy),
                       ``features`` and ``frechet_distance``.
image_folder.py        ``ImageFolderDataset``: the user's own images with same-stem ``.txt``
                       captions, square-cropped; corrupt or uncaptioned files are skipped and
                       counted in ``ImageFolderReport``.
trainer.py             Training loops for the VAE, the text-conditioned diffusion model and
                       ControlNets, checkpoints and exact resume (its docstring is the map).
nodes.py               The thin node adapters over the modules above.
=====================  ======================================================================

Typical use::

    from torch.utils.data import DataLoader
    from nodes.training.world import TinyWorld, collate
    from nodes.training import world_detector

    loader = DataLoader(TinyWorld(seed=0, holdout=[("green", "triangle")]), batch_size=64, collate_fn=collate)
    ...
    accuracy = world_detector.score(world_detector.detect_many(generated), intended_scenes)
"""
