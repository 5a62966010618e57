"""End-to-end recovery through POST /v1/verify (`python -m bench.recovery_e2e [--quick]`).

Runs the real service in-process (temporary data directory, development PKI), signs scikit-image photos and
generated pictures through POST /v1/sign (PNG in: the watermark and fingerprints are Hallmark's), attacks
each signed image (bench/robustness.py's attacks), uploads the result to POST /v1/verify and counts, per
attack: watermark detected, exact watermark id (and, of those, found only by the known-id test after the
blind read missed), fingerprint recall (the signed manifest among the repository's fingerprint
neighbours), and end-to-end recovery (status `recovered` naming the signed manifest; "similar" counts
the weaker fingerprint-only answer naming it first, which is not a recovery).
Two size classes: the photos at their native size (300-660 px) and at a generator's size (long
side 1024 px), 8 photos and `--generated` pictures (32) each. False recoveries: never-signed images
(generated pictures and crops of photos whose scene was never signed), each after one attack. Targets
(issue 7): >= 97 % end-to-end recovery after every attack but crop 25 % and flip; 0 false recoveries.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from app.bootstrap import init_dev
from app.main import create_app
from app.settings import Settings
from bench.robustness import ATTACKS, EXEMPT, PHOTOS, RGB, generated, null_images, rgb
from signing import image_fingerprints

FORM = {"model_name": "bench-model", "model_version": "1"}


def png(pixels: RGB) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


def decoded(payload: bytes) -> RGB:
    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))


def upscaled(pixels: RGB, long_side: int = 1024) -> RGB:
    image = Image.fromarray(pixels)
    factor = long_side / max(image.size)
    return np.asarray(
        image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and never-signed checks")
    parser.add_argument("--nulls", type=int, default=1000, help="never-signed images to check")
    parser.add_argument(
        "--generated", type=int, default=32, help="generated pictures per size class (besides 8 photos)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(11)
    photos = [(name, rgb(getattr(data, name)())) for name in PHOTOS]
    signed_photos, unsigned_photos = photos[::2], photos[1::2]  # null crops come from scenes never signed
    if args.quick:
        signed_photos = signed_photos[:3]
    pictures = {
        "native": signed_photos + generated(rng, 2 if args.quick else args.generated),
        "1024 px": [(f"{n}@1024", upscaled(p)) for n, p in signed_photos]
        + generated_1mp(rng, 2 if args.quick else args.generated),
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), public_rate_limit=0)
        token = init_dev(settings).api_key
        with TestClient(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {token}"}
            rt = client.app.state.runtime  # type: ignore[attr-defined]
            for size_class, images in pictures.items():
                run_class(client, rt, auth, size_class, images)
            nulls = null_images(rng, [p for _, p in unsigned_photos], 100 if args.quick else args.nulls)
            false_check(client, nulls)


def generated_1mp(rng: np.random.Generator, count: int) -> list[tuple[str, RGB]]:
    return [(f"{name}@1024", upscaled(p)) for name, p in generated(rng, count)]


def run_class(
    client: TestClient, rt: object, auth: dict[str, str], size_class: str, images: list[tuple[str, RGB]]
) -> None:
    counts: dict[str, Counter[str]] = {name: Counter() for name in ATTACKS}
    psnrs, ssims = [], []
    marked = 0
    for _, source in images:
        response = client.post(
            "/v1/sign", headers=auth, files={"file": ("a.png", png(source), "image/png")}, data=FORM
        )
        response.raise_for_status()
        header = response.headers["Hallmark-Watermark"]
        if not header.startswith("embedded"):
            print(f"  (not marked: {header})")
            continue
        marked += 1
        manifest_id = response.headers["Hallmark-Manifest-Id"]
        watermark_id = header.removeprefix("embedded; id=")
        signed = decoded(response.content)
        psnrs.append(peak_signal_noise_ratio(source, signed, data_range=255))
        ssims.append(structural_similarity(source, signed, channel_axis=-1, data_range=255))
        for name, attack in ATTACKS.items():
            attacked = np.ascontiguousarray(attack(signed))
            report = client.post("/v1/verify", files={"file": ("x.png", png(attacked), "image/png")}).json()
            recovery = report.get("recovery") or {}
            mark = recovery.get("watermark") or {}
            matches = recovery.get("matches") or []
            counts[name]["detected"] += bool(mark.get("detected"))
            counts[name]["exact"] += mark.get("watermark_id") == watermark_id
            counts[name]["known"] += (
                mark.get("watermark_id") == watermark_id and mark.get("test") == "known-id"
            )
            first = matches[0]["manifest_id"] if matches else None
            counts[name]["e2e"] += recovery.get("status") == "recovered" and first == manifest_id
            counts[name]["similar"] += recovery.get("status") == "similar" and first == manifest_id
            prints = image_fingerprints(Image.fromarray(attacked))
            near = rt.manifests.nearest(iscc=prints.iscc, pdq=prints.pdq, limit=5)  # type: ignore[attr-defined]
            counts[name]["fingerprint"] += any(m.entry.manifest_id == manifest_id for m in near)
    print(
        f"\n{size_class}: {marked} of {len(images)} images marked; "
        f"PSNR mean {statistics.mean(psnrs):.2f} dB, min {min(psnrs):.2f} dB; "
        f"SSIM mean {statistics.mean(ssims):.4f}"
    )
    print(
        f"{'attack':<18}{'detected':>10}{'exact id':>10}{'known-id':>10}{'fingerpr.':>10}"
        f"{'end-to-end':>12}{'similar':>10}"
    )
    for name in ATTACKS:
        c = counts[name]
        note = "  (reported, no target)" if name in EXEMPT else ""
        row = "".join(
            f"{100 * c[k] / max(marked, 1):>9.1f}%" for k in ("detected", "exact", "known", "fingerprint")
        )
        e2e, similar = (100 * c[k] / max(marked, 1) for k in ("e2e", "similar"))
        print(f"{name:<18}{row}{e2e:>11.1f}%{similar:>9.1f}%{note}")


def false_check(client: TestClient, nulls: list[RGB]) -> None:
    attacks = list(ATTACKS.values())
    outcomes: Counter[str] = Counter()
    for index, picture in enumerate(nulls):
        attacked = np.ascontiguousarray(attacks[index % len(attacks)](picture))
        report = client.post("/v1/verify", files={"file": ("x.png", png(attacked), "image/png")}).json()
        outcomes[(report.get("recovery") or {}).get("status", "none")] += 1
    print(
        f"\nnever-signed images: {len(nulls)} "
        "(generated pictures and crops of never-signed photos, one attack each)"
    )
    print(
        f"  false recoveries: {outcomes['recovered']} (target 0); reported similar: {outcomes['similar']}; "
        f"not found: {outcomes['not_found']}; not searched: {outcomes['not_searched']}"
    )


if __name__ == "__main__":
    main()
