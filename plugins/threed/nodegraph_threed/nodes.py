"""The 3D plugin's nodes (thin adapters over the library modules) and its plugin hooks.

Text to points (sampled by the core KSampler / Sample nodes — one sampling stack for every modality):
    LoadTextToPoints     a text-to-points model file → MODEL (api.diffusion_model: v, cosine schedule, 6 channels)
    EncodeShapePrompt    prompt → CONDITIONING {"words": one-hot (1, 8, V)}; "" is the CFG unconditional prompt
    EmptyPointLatent     LATENT {"samples": zeros (B, 6, N)} for N points
    LatentToPoints       LATENT (B, 6, N) → POINT_CLOUD (B, N, 6);  PointsToLatent the inverse (for img2img-like use)
    TextToPoints         the whole path in one node (api.sample), for simple graphs
Training:
    TrainTextToPoints    trains the tiny model on procedural shapes (api.training kit; resumable run folder)
    SaveTextToPoints     → models/threed/NAME.safetensors (never replaces a file unless asked)
Meshes and files:
    PointsToMesh, SampleMeshPoints, SavePointCloud (PLY), SaveMesh (GLB / PLY / OBJ), LoadMesh, LoadPointCloud
Images:
    RenderTurntable (POINT_CLOUD or MESH → IMAGE frames), ImageToPoints (IMAGE + depth IMAGE → POINT_CLOUD),
    ProceduralShape (a ground-truth shape cloud from a caption)

Bad input becomes a NodeInputError naming the input (PointsError / PromptError / ModelFileError / MeshFileError
from the library carry the argument).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, api, hookimpl

from . import SHIPPED_MODELS

MODEL_FOLDER = "threed"
DEFAULT_MODEL = "text_to_points.safetensors"
NET_PORT = "POINT_DIFFUSION_NET"


def _as_input_error(argument: str, error: Exception) -> NodeInputError:
    return NodeInputError(getattr(error, "argument", argument), getattr(error, "message", str(error)))


def _preview(samples: Any) -> Any:
    """A cheap progress preview of a point latent: a front view of the first cloud (1, 3, 64, 64)."""
    from .points import latent_to_points
    from .render import render_points

    image = render_points(latent_to_points(samples[:1].float().cpu()), size=64, azimuths=[30.0])
    return image.permute(0, 3, 1, 2)


def wrap_model(context: Any, net: Any, name: str) -> Any:
    """A PointDiffusionTransformer as a MODEL value (v prediction, cosine schedule, 6 latent channels)."""
    return api.diffusion_model(context, net, prediction="v", schedule="cosine", latent_channels=net.config.channels,
                               preview=_preview, name=name)


class LoadTextToPoints(Node):
    """Load a text-to-points model as a MODEL for KSampler / Sample (point latents from EmptyPointLatent).

    Looks in the model folder `threed` first, then in the plugin's shipped models/
    (`text_to_points.safetensors`, trained here on procedural shapes; see the plugin README).
    """

    category = "3d/loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        model_name: str = Input(DEFAULT_MODEL, model_folder=MODEL_FOLDER,
                                description="file in models/threed or the plugin's shipped models")

    outputs = (Output("model", "MODEL"),)

    def run(self, model_name: str) -> dict:
        from .training import ModelFileError, load_model

        # resolved and confined in the model folder, which register_model_dirs extends with models/ here
        weights = api.open_weights(self.context, model_name, folder=MODEL_FOLDER)
        try:
            net = load_model(model_name, {key: weights[key] for key in weights.keys()}, dict(weights.metadata or {}))
        except ModelFileError as error:
            raise NodeInputError("model_name", str(error)) from None
        return {"model": wrap_model(self.context, net, f"text-to-points {model_name}")}


class EncodeShapePrompt(Node):
    """Encode a shape prompt ("a tall red cylinder") for a text-to-points model; "" = unconditional."""

    category = "3d/conditioning"

    class Inputs(NodeInputs):
        text: str = Input("a red cube", multiline=True, max_length=200)

    outputs = (Output("conditioning", "CONDITIONING"),)

    def run(self, text: str) -> dict:
        from .text import PromptError, encode_words, prompt_warnings

        try:
            words = encode_words(text)
        except PromptError as error:
            raise NodeInputError("text", str(error)) from None
        for warning in prompt_warnings(text):
            self.context.warn(warning)
        return {"conditioning": {"words": words}}


class EmptyPointLatent(Node):
    """Zeros in the point-set latent layout {"samples": (B, 6, N)}: the start of text-to-points sampling."""

    category = "3d/latent"

    class Inputs(NodeInputs):
        points: int = Input(1024, ge=16, le=16384, step=16)
        batch_size: int = Input(1, ge=1, le=64)

    outputs = (Output("latent", "LATENT"),)

    def run(self, points: int, batch_size: int) -> dict:
        import torch

        return {"latent": {"samples": torch.zeros(batch_size, 6, points)}}


class LatentToPoints(Node):
    """A point-set LATENT (B, 6, N) → POINT_CLOUD (B, N, 6): xyz and rgb in [0, 1]."""

    category = "3d/latent"

    class Inputs(NodeInputs):
        latent: Any = Input(port="LATENT")

    outputs = (Output("points", "POINT_CLOUD"),)

    def run(self, latent: Any) -> dict:
        from .points import PointsError, check_points, latent_to_points

        samples = api.check_latent(latent, "latent", "LatentToPoints")
        if samples.ndim != 3 or samples.shape[1] != 6:
            raise NodeInputError("latent", f"expected a point-set latent (B, 6, N), found shape "
                                           f"{tuple(samples.shape)}; image latents are (B, C, h, w)")
        try:
            return {"points": check_points(latent_to_points(samples), "latent")}
        except PointsError as error:
            raise _as_input_error("latent", error) from None


class PointsToLatent(Node):
    """POINT_CLOUD (B, N, C) → a point-set LATENT {"samples": (B, 6, N)} (colourless clouds become grey)."""

    category = "3d/latent"

    class Inputs(NodeInputs):
        points: Any = Input(port="POINT_CLOUD")

    outputs = (Output("latent", "LATENT"),)

    def run(self, points: Any) -> dict:
        from .points import PointsError, check_points, points_to_latent

        try:
            return {"latent": points_to_latent(check_points(points, "points"))}
        except PointsError as error:
            raise _as_input_error("points", error) from None


class TextToPoints(Node):
    """Text → coloured point cloud with a text-to-points MODEL, in one node (api.sample with CFG)."""

    category = "3d"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text: str = Input("a tall red cylinder", multiline=True, max_length=200)
        points: int = Input(1024, ge=16, le=16384, step=16)
        batch_size: int = Input(1, ge=1, le=64)
        seed: int = Input(0, seed=True)
        steps: int = Input(24, ge=1, le=200)
        cfg: float = Input(1.0, ge=0.0, le=20.0, step=0.5,
                           description="1 = no guidance (measured best: higher scales exaggerate sizes)")
        sampler: str = Input("dpmpp_2m", choices_from="samplers")
        scheduler: str = Input("karras", choices_from="schedules")

    outputs = (Output("points", "POINT_CLOUD"), Output("latent", "LATENT"))

    def run(self, model: Any, text: str, points: int, batch_size: int, seed: int, steps: int, cfg: float,
            sampler: str, scheduler: str) -> dict:
        import torch

        from .points import latent_to_points
        from .text import PromptError, encode_words

        try:
            positive, negative = {"words": encode_words(text)}, {"words": encode_words("")}
        except PromptError as error:
            raise NodeInputError("text", str(error)) from None
        latent = api.sample(self.context, model, positive, negative, {"samples": torch.zeros(batch_size, 6, points)},
                            seed=seed, steps=steps, cfg=cfg, sampler=sampler, scheduler=scheduler)
        return {"points": latent_to_points(latent["samples"]), "latent": latent}


class TrainTextToPoints(Node):
    """Train the tiny text-to-points model on procedural coloured shapes (6 solids, 8 colours, sizes, stretches).

    Data are generated on the fly (held-out attribute combinations never appear). The run keeps
    checkpoints in <output>/training/<run_name>/ and resumes from them when run again with the
    same settings. Reports loss, lr and grad norm as progress every step.
    """

    category = "3d/training"

    class Inputs(NodeInputs):
        steps: int = Input(2400, ge=1, le=1_000_000)
        batch_size: int = Input(32, ge=1, le=1024)
        points: int = Input(256, ge=16, le=4096, description="points per training cloud")
        lr: float = Input(1e-3, gt=0.0, le=1.0)
        warmup_steps: int = Input(100, ge=0)
        ema_decay: float = Input(0.995, ge=0.0, lt=1.0)
        caption_dropout: float = Input(0.1, ge=0.0, le=1.0)
        width: int = Input(128, ge=16, le=1024, step=16)
        layers: int = Input(4, ge=1, le=24)
        heads: int = Input(4, ge=1, le=32)
        seed: int = Input(0, ge=0, le=2**31 - 1)
        checkpoint_every: int = Input(200, ge=0)
        run_name: str = Input("text_to_points", file_name_in="output", subfolders=True, min_length=1, max_length=80)

    outputs = (Output("net", NET_PORT), Output("model", "MODEL"), Output("report", "STRING"))

    def run(self, steps: int, batch_size: int, points: int, lr: float, warmup_steps: int, ema_decay: float,
            caption_dropout: float, width: int, layers: int, heads: int, seed: int, checkpoint_every: int,
            run_name: str) -> dict:
        import json

        import torch

        from .denoiser import PointDiffusionConfig, PointDiffusionTransformer
        from .training import run_identity, train_text_to_points

        if width % heads:
            raise NodeInputError("heads", f"width {width} must be a multiple of heads {heads}")
        folder = api.confine(Path(self.context.service("output_dir")) / "training", run_name, what="run name",
                             input_name="run_name", subfolders=True)
        kit = api.training(self.context)
        config = kit.TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                                 ema_decay=ema_decay, seed=seed, checkpoint_every=checkpoint_every)
        torch.manual_seed(seed)
        net = PointDiffusionTransformer(PointDiffusionConfig(width=width, layers=layers, heads=heads))
        run = kit.TrainingRun(folder, run_identity(net.config, config, points, caption_dropout),
                              warn=self.context.warn, shown_as=f"training run {run_name!r}",
                              budget=self.context.services.get("output_budget"))

        def progress(done: int, total: int, info: dict) -> None:
            self.context.progress(done, total, info={k: round(v, 6) if isinstance(v, float) else v
                                                     for k, v in info.items()})

        try:
            report = train_text_to_points(net, kit, config, run, progress, points=points,
                                          caption_dropout=caption_dropout)
        except kit.TrainingStateError as error:
            raise NodeInputError("run_name", str(error)) from None
        net.requires_grad_(False)
        return {"net": net, "model": wrap_model(self.context, net, f"text-to-points ({run_name})"),
                "report": json.dumps(report, default=str)}


class SaveTextToPoints(Node):
    """Write a trained text-to-points network to models/threed/NAME.safetensors (config + vocabulary in metadata)."""

    category = "3d/training"
    output_node = True

    class Inputs(NodeInputs):
        net: Any = Input(port=NET_PORT)
        filename: str = Input(DEFAULT_MODEL, file_name_in=MODEL_FOLDER, file_suffix=".safetensors",
                              min_length=1, max_length=120)
        overwrite: bool = Input(False, description="replace an existing file of that name (else NAME_1, ...)")
        report: str = Input("", description="the training report (stored in the file's metadata)")

    outputs = ()

    def run(self, net: Any, filename: str, overwrite: bool, report: str) -> dict:
        import json

        from .training import save_model

        if not filename.endswith(".safetensors"):
            raise NodeInputError("filename", f"expected a name ending in .safetensors, found {filename!r}")
        folder = self.context.service("model_paths").directories(MODEL_FOLDER)[0]
        folder.mkdir(parents=True, exist_ok=True)
        path = api.confine(folder, filename, what="model file name", input_name="filename")
        try:
            parsed = json.loads(report) if report else {}
        except json.JSONDecodeError:
            parsed = {"text": report}
        written = api.training(self.context).write_new_file(path, overwrite,
                                                             lambda tmp: save_model(tmp, net, parsed),
                                                             self.context.service("model_paths").directories(
                                                                 MODEL_FOLDER), self.context.warn)
        return {"model_files": [{"path": str(written), "kind": "text_to_points", "format": "safetensors"}],
                "bytes": written.stat().st_size}


def _points_input(points: Any, argument: str = "points", **options: Any) -> Any:
    from .points import PointsError, check_points

    try:
        return check_points(points, argument, **options)
    except PointsError as error:
        raise _as_input_error(argument, error) from None


def _mesh_input(mesh: Any, argument: str = "mesh") -> list[dict]:
    from .points import PointsError, check_mesh

    try:
        return check_mesh(mesh, argument)
    except PointsError as error:
        raise _as_input_error(argument, error) from None


def _input_file(node: Node, name: str, argument: str = "file") -> Path:
    """A file in the input folder (confined there), or NodeInputError naming `argument`."""

    api.confine(node.context.service("input_dir"), name, what="file name", input_name=argument, subfolders=True)
    try:
        return Path(node.context.service("resolve_file")("input", name))
    except LookupError as error:
        raise NodeInputError(argument, str(error)) from None


class ProceduralShape(Node):
    """A ground-truth cloud of the shape world from a caption ("a tall red cylinder"): what the model learned from."""

    category = "3d"

    class Inputs(NodeInputs):
        caption: str = Input("a tall red cylinder", max_length=200)
        points: int = Input(1024, ge=8, le=100_000)
        seed: int = Input(0, seed=True)

    outputs = (Output("points", "POINT_CLOUD"),)

    def run(self, caption: str, points: int, seed: int) -> dict:
        import torch

        from .shapes import ShapeError, parse_caption, sample_spec

        try:
            spec = parse_caption(caption)
        except ShapeError as error:
            raise NodeInputError("caption", str(error)) from None
        generator = torch.Generator().manual_seed(seed % 2**63)
        return {"points": sample_spec(spec, points, generator).unsqueeze(0)}


class PointsToMesh(Node):
    """Surface points → a closed triangle mesh: distance-field occupancy + marching cubes, vertex colours from the points.

    One mesh per cloud (a list when the batch has several). `resolution` is the grid size along the
    cloud's longest side (cost and detail grow with its cube); `shell` thickens the surface to close gaps
    between points, in units of their typical spacing; `min_piece` drops islands made by stray points.
    """

    category = "3d/mesh"

    class Inputs(NodeInputs):
        points: Any = Input(port="POINT_CLOUD")
        resolution: int = Input(56, ge=16, le=160)
        shell: float = Input(2.0, ge=0.5, le=6.0, step=0.25)
        min_piece: float = Input(0.25, ge=0.0, le=1.0, step=0.05,
                                 description="drop separate pieces smaller than this fraction of the largest "
                                             "(stray points); 0 keeps every piece")

    outputs = (Output("mesh", "MESH"),)

    def run(self, points: Any, resolution: int, shell: float, min_piece: float) -> dict:
        from .meshing import points_to_mesh
        from .points import PointsError

        clouds = _points_input(points, "points", allow_degenerate=False)
        meshes = []
        for k, cloud in enumerate(clouds):
            self.context.progress(k, len(clouds))
            try:
                meshes.append(points_to_mesh(cloud, resolution, shell, min_piece=min_piece,
                                             argument="points" if len(clouds) == 1 else f"points[{k}]",
                                             check=self.context.check_interrupted))
            except PointsError as error:
                raise _as_input_error("points", error) from None
        return {"mesh": meshes[0] if len(meshes) == 1 else meshes}


class SampleMeshPoints(Node):
    """Mesh → points sampled uniformly on its surface (by area), with colours and optionally face normals.

    Coordinates must lie within ±1e18 (a mesh beyond is refused, naming `mesh`); areas are computed in float64.
    """

    category = "3d/mesh"
    version = "1.0.1"        # 1.0.1: float64 face areas (meshes at 1e10 … 1e18 no longer fail); ±1e18 limit

    class Inputs(NodeInputs):
        mesh: Any = Input(port="MESH")
        points: int = Input(2048, ge=1, le=1_000_000)
        normals: bool = Input(False, description="add face normals: (B, N, 9) instead of (B, N, 6)")
        seed: int = Input(0, seed=True)

    outputs = (Output("points", "POINT_CLOUD"),)

    def run(self, mesh: Any, points: int, normals: bool, seed: int) -> dict:
        import torch

        from .meshing import sample_mesh_points
        from .points import PointsError

        generator = torch.Generator().manual_seed(seed % 2**63)
        try:
            clouds = [sample_mesh_points(m, points, generator, with_normals=normals) for m in _mesh_input(mesh)]
        except PointsError as error:
            raise _as_input_error("mesh", error) from None
        return {"points": torch.stack(clouds)}


class SaveMesh(Node):
    """Write meshes to the output folder as GLB (glTF binary), PLY or OBJ, with vertex colours; kind "mesh"."""

    category = "3d/files"
    output_node = True
    version = "1.1.1"        # 1.1.1: files carry the graph as it ran and the run record; 1.1: `filename_prefix`
    renamed_inputs = {"prefix": "filename_prefix"}

    class Inputs(NodeInputs):
        mesh: Any = Input(port="MESH")
        format: Literal["glb", "ply", "obj"] = Input("glb")
        filename_prefix: str = Input("threed/mesh", file_name_in="output", subfolders=True, min_length=1,
                                     max_length=200)

    outputs = ()

    def run(self, mesh: Any, format: str, filename_prefix: str) -> dict:
        from .mesh_files import MIME, write_mesh

        meshes = _mesh_input(mesh)
        embedded = _graph_and_records(self.context, len(meshes))
        writers = [lambda path, m=m, e=e: write_mesh(path, m, format, e) for m, e in zip(meshes, embedded)]
        fields = [{"vertices": len(m["vertices"]), "faces": len(m["faces"])} for m in meshes]
        return {"files": api.save_files(self.context, writers, kind="mesh", prefix=filename_prefix,
                                        suffix=f".{format}", mime=MIME[format], fields=fields,
                                        argument="filename_prefix")}


class SavePointCloud(Node):
    """Write point clouds to the output folder as PLY (xyz, colours, normals) or GLB (glTF points); kind "pointcloud"."""

    category = "3d/files"
    output_node = True
    version = "1.1.1"        # 1.1.1: files carry the graph as it ran and the run record; 1.1: `filename_prefix`
    renamed_inputs = {"prefix": "filename_prefix"}

    class Inputs(NodeInputs):
        points: Any = Input(port="POINT_CLOUD")
        format: Literal["ply", "glb"] = Input("ply")
        filename_prefix: str = Input("threed/points", file_name_in="output", subfolders=True, min_length=1,
                                     max_length=200)

    outputs = ()

    def run(self, points: Any, format: str, filename_prefix: str) -> dict:
        from .mesh_files import MIME, write_points

        clouds = _points_input(points)
        embedded = _graph_and_records(self.context, len(clouds))
        writers = [lambda path, c=c, e=e: write_points(path, c, format, e) for c, e in zip(clouds, embedded)]
        return {"files": api.save_files(self.context, writers, kind="pointcloud", prefix=filename_prefix,
                                        suffix=f".{format}", mime=MIME[format], fields={"points": clouds.shape[1]},
                                        argument="filename_prefix")}


def _graph_and_records(context: Any, count: int) -> list[dict[str, str] | None]:
    """What each of `count` saved files carries, as a PNG SaveImage writes does: the graph as it ran (a
    RandomInt's seed pinned, so running it again makes the same shape) and the run record with the file's batch
    index (versions, device, model hashes); None each without a graph."""
    import json

    from nodegraph.provenance import run_record

    if context.graph is None:
        return [None] * count
    graph = json.dumps(context.graph_as_run(), separators=(",", ":"))
    record = run_record(context)
    return [{"nodegraph": graph, "nodegraph_run": json.dumps({**record, "batch_index": k, "batch_size": count},
                                                             separators=(",", ":"))} for k in range(count)]


def _mesh_file_fingerprint(literals: dict[str, Any], resolve_file: Any) -> str | None:
    """The loaders' cache fingerprint: the file's size and times, and an OBJ's material library's too (or that it
    is missing), so a .mtl copied in beside the OBJ after a grey load is read on the next run."""
    from .mesh_files import obj_material_library

    try:
        path = resolve_file("input", literals["file"])
        stat = path.stat()
    except (OSError, LookupError, KeyError):
        return "missing"
    out = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"   # ctime: a rewrite with the old mtime put back
    if str(path).lower().endswith(".obj"):
        try:
            name, found = obj_material_library(path)
            if name:
                library = found.stat() if found is not None else None
                out += f"|mtl:{library.st_size}:{library.st_mtime_ns}:{library.st_ctime_ns}" if library else "|mtl:-"
        except (OSError, ValueError):     # unreadable here: the load itself says what is wrong
            pass
    return out


class LoadMesh(Node):
    """Load a mesh (GLB, PLY or OBJ) from the input folder; a GLB scene's meshes are merged into one.

    A texture (UVs + image) is baked into vertex colours (the texture at each vertex); when it cannot be read
    (an OBJ whose image file is missing) the mesh loads grey and a warning says the texture was dropped, as it
    says when an OBJ's material library (.mtl) is missing. The editor uploads GLB, PLY and OBJ only: put an OBJ's
    .mtl and images into the input folder by hand, or use GLB (textures inside).
    Coordinates must lie within ±1e18 (their squares overflow float32 beyond).
    """

    category = "3d/files"
    version = "1.0.1"        # 1.0.1: textures baked into vertex colours; coordinates beyond ±1e18 refused

    class Inputs(NodeInputs):
        file: str = Input(description="file name in the input folder", file_name_in="input", subfolders=True,
                          min_length=1, max_length=255, upload="mesh")
        require_manifold: bool = Input(False, description="refuse meshes with edges shared by more than two faces")

    outputs = (Output("mesh", "MESH"),)

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Any) -> str | None:
        return _mesh_file_fingerprint(literals, resolve_file)

    def run(self, file: str, require_manifold: bool) -> dict:
        from .mesh_files import MeshFileError, read_mesh
        from .meshing import mesh_report

        path = _input_file(self, file)
        try:
            mesh = read_mesh(path, "file", warn=self.context.warn)
        except MeshFileError as error:
            raise NodeInputError("file", str(error).split(": ", 1)[-1]) from None
        mesh = _mesh_input(mesh, "file")[0]
        report = mesh_report(mesh)
        if report["degenerate_faces"] == report["faces"]:
            raise NodeInputError("file", f"{path.name}: every face is degenerate (zero area); the mesh has no surface")
        if require_manifold and report["non_manifold_edges"]:
            raise NodeInputError("file", f"{path.name} is not manifold: {report['non_manifold_edges']} edge(s) are "
                                         f"shared by more than two faces; repair it (e.g. in Blender: Mesh > Clean "
                                         f"Up) or set require_manifold to false")
        return {"mesh": mesh}


class LoadPointCloud(Node):
    """Load a point cloud (PLY, or the vertices of a GLB / OBJ / PLY mesh) from the input folder.

    A mesh's texture is baked into its vertices' colours (a warning says when it cannot be read).
    """

    category = "3d/files"
    version = "1.0.1"        # 1.0.1: textures baked into vertex colours; coordinates beyond ±1e18 refused

    class Inputs(NodeInputs):
        file: str = Input(description="file name in the input folder", file_name_in="input", subfolders=True,
                          min_length=1, max_length=255, upload="pointcloud")

    outputs = (Output("points", "POINT_CLOUD"),)

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Any) -> str | None:
        return _mesh_file_fingerprint(literals, resolve_file)

    def run(self, file: str) -> dict:
        from .mesh_files import MeshFileError, read_points

        path = _input_file(self, file)
        try:
            points = read_points(path, "file", warn=self.context.warn)
        except MeshFileError as error:
            raise NodeInputError("file", str(error).split(": ", 1)[-1]) from None
        return {"points": _points_input(points.unsqueeze(0), "file")}


class RenderTurntable(Node):
    """Render points or a mesh from a camera circling it: IMAGE frames (B·F, H, W, 3), cloud-major, for image / video nodes.

    Connect `points` or `mesh` (not both). Depth shading darkens far points; meshes are also lit by
    their face normals. Pure torch, on the CPU. Coordinates must lie within ±1e18.
    """

    category = "3d/render"
    version = "1.0.1"        # 1.0.1: float64 surface areas; coordinates beyond ±1e18 refused, naming the input

    class Inputs(NodeInputs):
        points: Any = Input(None, port="POINT_CLOUD")
        mesh: Any = Input(None, port="MESH")
        frames: int = Input(8, ge=1, le=360)
        size: int = Input(256, ge=32, le=2048, step=8)
        elevation: float = Input(20.0, ge=-89.0, le=89.0)
        projection: Literal["orthographic", "perspective"] = Input("perspective")
        start_azimuth: float = Input(30.0, ge=-360.0, le=360.0)

    outputs = (Output("images", "IMAGE"),)

    def run(self, points: Any, mesh: Any, frames: int, size: int, elevation: float, projection: str,
            start_azimuth: float) -> dict:
        from .render import render_mesh, render_points, turntable_azimuths

        if (points is None) == (mesh is None):
            raise NodeInputError("points" if points is None else "mesh",
                                 "connect exactly one of `points` and `mesh`" + (" (both are connected)"
                                                                                 if points is not None else ""))
        azimuths = turntable_azimuths(frames, start_azimuth)
        shapes = _mesh_input(mesh) if mesh is not None else _points_input(points, allow_degenerate=False)
        values = len(shapes) * frames * size * size * 3
        if values > MAX_TURNTABLE_VALUES:          # checked before any work: the frames are float32 images
            raise NodeInputError("frames" if frames > 8 else "size",
                                 f"{len(shapes)} turntable(s) × {frames} frame(s) of {size}×{size} would need "
                                 f"{values * 4 / 2**30:,.1f} GiB; the limit is {MAX_TURNTABLE_VALUES * 4 // 2**30} "
                                 f"GiB — lower frames or size (e.g. {frames} frames at "
                                 f"{_largest_size(len(shapes) * frames)}×{_largest_size(len(shapes) * frames)})")
        render = render_mesh if mesh is not None else render_points
        return {"images": render(shapes, size, azimuths, elevation=elevation, projection=projection)}


MAX_TURNTABLE_VALUES = 512 * 2**20      # RenderTurntable's output: 2 GiB of float32 pixel values


def _largest_size(images: int) -> int:
    """The largest multiple of 8 whose images × size² × 3 values fit MAX_TURNTABLE_VALUES (at least 32)."""
    return max(32, int((MAX_TURNTABLE_VALUES / (3 * images)) ** 0.5) // 8 * 8)


class ImageToPoints(Node):
    """Lift an image to coloured 3D points with a depth map (white = near), e.g. from the image pack's DistanceDepth.

    Each kept pixel becomes a point: x, y from its position (the long side spans [-1, 1]), z = depth_scale ×
    depth. `mask` (e.g. ForegroundMask) chooses the pixels; without it, pixels deeper than min_depth are kept.
    """

    category = "3d"

    class Inputs(NodeInputs):
        image: Any = Input(port="IMAGE")
        depth: Any = Input(port="IMAGE", description="grey depth image, white = near (its channels are averaged)")
        mask: Any = Input(None, port="MASK")
        points: int = Input(8192, ge=16, le=1_000_000, description="at most this many (fewer when fewer pixels are kept)")
        depth_scale: float = Input(0.5, ge=0.0, le=10.0, step=0.05)
        min_depth: float = Input(0.0, ge=0.0, le=1.0, step=0.01)
        seed: int = Input(0, seed=True)

    outputs = (Output("points", "POINT_CLOUD"),)

    def run(self, image: Any, depth: Any, mask: Any, points: int, depth_scale: float, min_depth: float,
            seed: int) -> dict:
        import torch

        from .lift import lift_image
        from .points import PointsError

        image = api.check_image(image, "image", "ImageToPoints")
        depth = api.check_image(depth, "depth", "ImageToPoints")
        if mask is not None:
            mask = api.check_mask(mask, "mask", "ImageToPoints")
        if depth.shape[0] not in (1, image.shape[0]) or (mask is not None and mask.shape[0] not in (1, image.shape[0])):
            raise NodeInputError("depth", f"batch {depth.shape[0]} does not match the image batch {image.shape[0]}")
        if not bool(torch.isfinite(depth).all()):
            raise NodeInputError("depth", "the depth image has NaN or infinite values")
        generator = torch.Generator().manual_seed(seed % 2**63)
        clouds = []
        for k in range(image.shape[0]):
            try:
                clouds.append(lift_image(image[k], depth[min(k, len(depth) - 1)].mean(-1),
                                         None if mask is None else mask[min(k, len(mask) - 1)], points=points,
                                         depth_scale=depth_scale, min_depth=min_depth, generator=generator))
            except PointsError as error:
                raise _as_input_error("depth", error) from None
        count = min(len(c) for c in clouds)
        return {"points": torch.stack([c[:count] for c in clouds])}


NODES = [LoadTextToPoints, EncodeShapePrompt, EmptyPointLatent, LatentToPoints, PointsToLatent, TextToPoints,
         TrainTextToPoints, SaveTextToPoints, ProceduralShape, PointsToMesh, SampleMeshPoints, SaveMesh, SavePointCloud,
         LoadMesh, LoadPointCloud, RenderTurntable, ImageToPoints]


@hookimpl
def register_types() -> list:
    from nodegraph import PortType

    return [PortType(NET_PORT, "A trained text-to-points network (PointDiffusionTransformer), for SaveTextToPoints.",
                     color="#00897b")]


@hookimpl
def register_nodes() -> list:
    return NODES


@hookimpl
def register_model_folders() -> dict:
    return {MODEL_FOLDER: [".safetensors"]}


@hookimpl
def register_model_dirs() -> dict[str, list[str]]:
    return {MODEL_FOLDER: [str(SHIPPED_MODELS)]}
