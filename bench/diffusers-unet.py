"""The diffusers/PyTorch column of `npm run bench -- unet` (issue 32): one evaluation of the SD1.5-architecture
UNet (diffusers 0.21.4 `UNet2DConditionModel`, random weights, float32, CPU) at batch 2 with 77 text tokens, timed
per latent size and thread count. bench/unet.ts runs it when Debian's python3 and the oracle sources are there:

  PYTHONPATH=/root/oracle/diffusers/src:/root/oracle/hub/src:/root/oracle/clip/clip:/work/shared/oracle/shims \
    /usr/bin/python3 bench/diffusers-unet.py --sizes 32,64 --threads 1,2 --runs 3,1

Prints one JSON object on its last line: {"torch": version, "diffusers": version, "results": [{size, threads,
seconds: [...], median}], "parameters": n}. The thread count is set with torch.set_num_threads before each size's
evaluations; one untimed warm-up evaluation comes first at each (size, threads).
"""

import argparse
import json
import statistics
import time

import torch
import diffusers
from diffusers import UNet2DConditionModel

# the SD1.5 UNet's config (runwayml/stable-diffusion-v1-5 unet/config.json), as src/models/random-sd15.ts
SD15 = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[320, 640, 1280, 1280],
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", default="3,1", help="timed evaluations per size, in --sizes order")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    runs = [int(r) for r in a.runs.split(",")]
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15).eval()
    params = sum(p.numel() for p in unet.parameters())
    results = []
    g = torch.Generator().manual_seed(1)
    for i, size in enumerate(sizes):
        x = torch.randn(2, 4, size, size, generator=g)
        ctx = torch.randn(2, 77, 768, generator=g)
        t = torch.tensor([981, 981])
        for n in [int(s) for s in a.threads.split(",")]:
            torch.set_num_threads(n)
            with torch.no_grad():
                unet(x, t, ctx)  # warm-up
                secs = []
                for _ in range(runs[min(i, len(runs) - 1)]):
                    t0 = time.perf_counter()
                    unet(x, t, ctx)
                    secs.append(time.perf_counter() - t0)
            results.append(dict(size=size, threads=n, seconds=secs, median=statistics.median(secs)))
            print(f"diffusers {size}x{size} {n} thread(s): {statistics.median(secs):.2f} s", flush=True)
    print(json.dumps(dict(torch=torch.__version__, diffusers=diffusers.__version__, parameters=params,
                          results=results)))


if __name__ == "__main__":
    main()
