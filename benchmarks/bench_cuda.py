"""Time our CUDA deformable convolution (DCNv1, libdcn_cuda_kernels.so) against
torchvision.ops.deform_conv2d on the same GPU.

Shape: the res5 layer of Deformable R-FCN, N x 512 x 38 x 63 -> 512, 3x3 kernel, dilate 2,
pad 2, 4 deformable groups, at batch 1 and 8; forward and forward + backward (all gradients).
Prints a table (ms, ours, torchvision, ratio ours / torchvision; the goal is <= 0.7).
Full float32 on both sides (TF32 off) unless --tf32, which enables it on both.

    python benchmarks/bench_cuda.py [--batches 1 8] [--iters 20] [--tf32]
"""
import argparse
import ctypes
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'operator_cxx', 'cuda'))
import dcn_cuda_ctypes as dc  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 8])
    ap.add_argument('--iters', type=int, default=20)
    ap.add_argument('--tf32', action='store_true', help='allow TF32 GEMMs (ours and torch)')
    args = ap.parse_args()
    try:
        import torch
        import torchvision.ops
    except ImportError as exc:
        sys.exit('bench_cuda: needs torch and torchvision with CUDA (%s)' % exc)
    if not torch.cuda.is_available():
        sys.exit('bench_cuda: no CUDA device visible; nothing to time')
    if not os.path.isfile(dc.KERNEL_LIB):
        sys.exit('bench_cuda: %s is not built (run ./init.sh with nvcc)' % dc.KERNEL_LIB)
    lib = dc.load(dc.KERNEL_LIB)
    lib.dcn_cuda_set_allow_tf32(int(args.tf32))
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    dev = torch.device('cuda')
    stream = torch.cuda.current_stream().cuda_stream
    C, H, W, F, k, dg, pad, dil = 512, 38, 63, 512, 3, 4, 2, 2
    print('device: %s; TF32 %s' % (torch.cuda.get_device_name(), 'on' if args.tf32 else 'off'))
    print('%-6s %-8s %12s %16s %8s' % ('batch', 'pass', 'ours (ms)', 'torchvision (ms)', 'ratio'))

    def timeit(fn):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(args.iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / args.iters

    for N in args.batches:
        g = dc.conv_geom(N, C, H, W, F, (k, k), (1, 1), (pad, pad), (dil, dil), 1, dg, False, N)
        Ho, Wo = g.Ho, g.Wo
        x = torch.randn(N, C, H, W, device=dev)
        off = torch.randn(N, 2 * dg * k * k, Ho, Wo, device=dev) * 2
        w = torch.randn(F, C, k, k, device=dev) * 0.01
        b = torch.randn(F, device=dev)
        out = torch.empty(N, F, Ho, Wo, device=dev)
        gout = torch.randn_like(out)
        grads = [torch.empty_like(t) for t in (x, off, w, b)]
        ws_bytes = lib.dcn_cuda_conv_workspace_bytes(ctypes.byref(g), dc.F32)
        ws = torch.empty(ws_bytes, dtype=torch.uint8, device=dev)

        def ours_fwd():
            dc.check(lib, lib.dcn_cuda_conv_forward(
                ctypes.byref(g), dc.F32, x.data_ptr(), off.data_ptr(), None, w.data_ptr(),
                b.data_ptr(), out.data_ptr(), ws.data_ptr(), ws_bytes, stream))

        def ours_fwd_bwd():
            ours_fwd()
            dc.check(lib, lib.dcn_cuda_conv_backward(
                ctypes.byref(g), dc.F32, gout.data_ptr(), x.data_ptr(), off.data_ptr(), None,
                w.data_ptr(), *[t.data_ptr() for t in grads[:2]], None,
                *[t.data_ptr() for t in grads[2:]], ws.data_ptr(), ws_bytes, stream))

        xt, ot, wt, bt = (t.clone().requires_grad_(True) for t in (x, off, w, b))

        def tv_fwd():
            with torch.no_grad():
                torchvision.ops.deform_conv2d(x, off, w, b, padding=pad, dilation=dil)

        def tv_fwd_bwd():
            y = torchvision.ops.deform_conv2d(xt, ot, wt, bt, padding=pad, dilation=dil)
            y.backward(gout)

        for name, a, bb in (('fwd', ours_fwd, tv_fwd), ('fwd+bwd', ours_fwd_bwd, tv_fwd_bwd)):
            t_ours, t_tv = timeit(a), timeit(bb)
            print('%-6d %-8s %12.3f %16.3f %8.2f' % (N, name, t_ours, t_tv, t_ours / t_tv))
        # same numbers as torchvision (interior and border samples agree up to the DCNv1
        # border rule, so only report the forward difference as information)
        ours_fwd()
        ref = torchvision.ops.deform_conv2d(x, off, w, b, padding=pad, dilation=dil)
        print('       max |ours - torchvision| forward: %.3g (DCNv1 border rule differs)'
              % (out - ref).abs().max().item())


if __name__ == '__main__':
    main()
