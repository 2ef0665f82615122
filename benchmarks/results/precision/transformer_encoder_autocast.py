"""torch 2.13 (CPU): nn.TransformerEncoder raises under torch.autocast in eval mode when it is
given a src_key_padding_mask; found by `python -m benchmarks.precision` (transformer_encoder,
--reference autocast-bf16 and autocast-fp16: every seed's reference raised).

In eval mode without grad, a padding mask sends TransformerEncoder down its fast path with
nested tensors (enable_nested_tensor=True, the default), where torch._transformer_encoder_layer_fwd
gets float32 weights and a bfloat16 (or float16) input from autocast and raises
"expected scalar type Float but found BFloat16". The same module runs under autocast without
the mask, with the fast path off, with enable_nested_tensor=False, and with grad enabled.
pytorch/pytorch#132613 reported the unmasked case (fixed by 2.13); the masked one remains.

Exit 1 while it raises, 0 once fixed.
"""
import sys

import torch
from torch import nn

torch.manual_seed(0)
layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
encoder = nn.TransformerEncoder(layer, 2).eval()
x = torch.randn(2, 6, 64)
padding = torch.tensor([[False] * 6, [False] * 3 + [True] * 3])

failed = []
for dtype in (torch.bfloat16, torch.float16):
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        encoder(x)  # no mask: runs
        try:
            encoder(x, src_key_padding_mask=padding)
        except RuntimeError as error:
            failed.append(f"autocast {dtype}: {str(error).splitlines()[0]}")
torch.backends.mha.set_fastpath_enabled(False)
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
    encoder(x, src_key_padding_mask=padding)  # the standard path runs
torch.backends.mha.set_fastpath_enabled(True)
print(f"torch {torch.__version__}")
for line in failed:
    print(f"raises with a padding mask under {line}")
if failed:
    sys.exit(1)
print("fixed: the encoder runs under autocast with a padding mask")
