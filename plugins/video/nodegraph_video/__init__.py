"""nodegraph-video: video diffusion for nodegraph (issue 13) — frame batches, motion modules, video files.

Map (library modules import no engine code; `nodes.py` adapts them to nodes):
    motion_module   AnimateDiff motion modules (both checkpoint layouts), insertion points, context windows
    frames          the frame-batch layout: pick / slice / concat / reverse, prompt travel, smoothing, cross-fade
    animated_world  procedurally animated tiny-world clips and their captions (training data, benchmark)
    motion_training the training loop of a motion module on a frozen image UNet, the module file format
    video_io        LoadVideo / SaveVideo: mp4 (H.264), webm (VP9), animated GIF / WebP
    nodes           the nodes (entry point `video` in group `nodegraph`)
"""

from pathlib import Path

SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models"
