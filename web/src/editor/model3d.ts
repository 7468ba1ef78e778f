/**
 * The three.js side of Model3DView (loaded on demand): fetch and parse a model,
 * frame it, and render it with orbit controls until disposed.
 */
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { OBJLoader } from "three/examples/jsm/loaders/OBJLoader.js";
import { PLYLoader } from "three/examples/jsm/loaders/PLYLoader.js";
import { STLLoader } from "three/examples/jsm/loaders/STLLoader.js";
import type { Model3DFormat } from "../run/media";

async function fetchBytes(url: string): Promise<ArrayBuffer> {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`HTTP ${response.status} for the model file`);
  return response.arrayBuffer();
}

function countVertices(object: THREE.Object3D): number {
  let n = 0;
  object.traverse((child) => {
    const geometry = (child as THREE.Mesh).geometry as THREE.BufferGeometry | undefined;
    n += geometry?.attributes?.position?.count ?? 0;
  });
  return n;
}

function materialFor(geometry: THREE.BufferGeometry, asPoints: boolean): THREE.Material {
  const colors = Boolean(geometry.attributes.color);
  if (asPoints) return new THREE.PointsMaterial({ size: 0.02, vertexColors: colors, color: colors ? 0xffffff : 0x9ccfff, sizeAttenuation: true });
  return new THREE.MeshStandardMaterial({ vertexColors: colors, color: colors ? 0xffffff : 0xb8c4d6, flatShading: !geometry.attributes.normal, side: THREE.DoubleSide });
}

/** Parse the model into a three.js object. */
async function loadObject(url: string, format: Model3DFormat, points: boolean): Promise<THREE.Object3D> {
  const bytes = await fetchBytes(url);
  switch (format) {
    case "glb":
    case "gltf": {
      const gltf = await new GLTFLoader().parseAsync(format === "glb" ? bytes : new TextDecoder().decode(bytes), "");
      if (points) {
        gltf.scene.traverse((child) => {
          const mesh = child as THREE.Mesh;
          if (mesh.isMesh) child.parent?.add(new THREE.Points(mesh.geometry, materialFor(mesh.geometry, true)));
        });
      }
      return gltf.scene;
    }
    case "obj": {
      const object = new OBJLoader().parse(new TextDecoder().decode(bytes));
      object.traverse((child) => {
        const mesh = child as THREE.Mesh;
        if (mesh.isMesh) {
          if (!mesh.geometry.attributes.normal) mesh.geometry.computeVertexNormals();
          mesh.material = materialFor(mesh.geometry, false);
        }
      });
      return object;
    }
    case "stl": {
      const geometry = new STLLoader().parse(bytes);
      return new THREE.Mesh(geometry, materialFor(geometry, false));
    }
    case "ply": {
      const geometry = new PLYLoader().parse(bytes);
      const asPoints = points || !geometry.index;
      if (!asPoints && !geometry.attributes.normal) geometry.computeVertexNormals();
      return asPoints ? new THREE.Points(geometry, materialFor(geometry, true)) : new THREE.Mesh(geometry, materialFor(geometry, false));
    }
  }
}

/** Show the model in `element`; resolves once it is drawn. */
export async function mountModel(element: HTMLElement, url: string, format: Model3DFormat, points: boolean): Promise<{ vertices: number; dispose: () => void }> {
  const object = await loadObject(url, format, points);
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  const width = element.clientWidth || 260;
  const height = element.clientHeight || 220;
  renderer.setPixelRatio(Math.min(2, globalThis.devicePixelRatio || 1));
  renderer.setSize(width, height);
  element.appendChild(renderer.domElement);

  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x101318);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x334455, 2.2));
  const sun = new THREE.DirectionalLight(0xffffff, 1.5);
  sun.position.set(2, 3, 4);
  scene.add(sun);
  scene.add(object);

  // Frame the model: centre it and put the camera at a distance from its bounding sphere.
  const box = new THREE.Box3().setFromObject(object);
  const sphere = box.getBoundingSphere(new THREE.Sphere());
  const radius = sphere.radius || 1;
  object.position.sub(sphere.center);
  object.traverse((child) => {
    const material = (child as THREE.Points).material as THREE.PointsMaterial | undefined;
    if (material && "size" in material && (child as THREE.Points).isPoints) material.size = radius / 60;
  });
  const camera = new THREE.PerspectiveCamera(40, width / height, radius / 100, radius * 100);
  camera.position.set(radius * 1.6, radius * 1.1, radius * 2.2);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;

  let frame = 0;
  const draw = () => {
    frame = requestAnimationFrame(draw);
    controls.update();
    renderer.render(scene, camera);
  };
  draw();
  const resize = new ResizeObserver(() => {
    const w = element.clientWidth || width;
    const h = element.clientHeight || height;
    renderer.setSize(w, h);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  });
  resize.observe(element);

  return {
    vertices: countVertices(object),
    dispose: () => {
      cancelAnimationFrame(frame);
      resize.disconnect();
      controls.dispose();
      renderer.dispose();
      renderer.domElement.remove();
    },
  };
}
