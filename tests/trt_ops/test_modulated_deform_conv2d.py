"""modulated_deform_conv2d: reference vs conv2d (zero offsets), shifted conv (integer offsets),
a per-tap direct loop, autograd, ONNX round trips in all three schemes."""

import pytest
import torch
import torch.nn.functional as F
from bevdeploy.plugins.trt_ops.modulated_deform_conv2d import modulated_deform_conv2d_reference, output_size
from bevdeploy.plugins.trt_ops.sampling import linear_sample
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx

CFG = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2, deform_groups=2)


def _case(n=1, cin=4, cout=6, h=7, w=9, k=3, seed=0, dtype=torch.float32, cfg=CFG, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    ho = output_size(h, k, cfg["stride"][0], cfg["padding"][0], cfg["dilation"][0])
    wo = output_size(w, k, cfg["stride"][1], cfg["padding"][1], cfg["dilation"][1])
    dg = cfg["deform_groups"]
    x = torch.randn(n, cin, h, w, generator=g, dtype=dtype)
    offset = (torch.rand(n, dg * 2 * k * k, ho, wo, generator=g, dtype=dtype) - 0.5) * 2 * spread
    mask = torch.rand(n, dg * k * k, ho, wo, generator=g, dtype=dtype)
    weight = torch.randn(cout, cin // cfg["groups"], k, k, generator=g, dtype=dtype)
    bias = torch.randn(cout, generator=g, dtype=dtype)
    return x, offset, mask, weight, bias


def _args(cfg=CFG):
    return (list(cfg["stride"]), list(cfg["padding"]), list(cfg["dilation"]), cfg["groups"], cfg["deform_groups"])


def _direct(x, offset, mask, weight, bias, stride, padding, dilation, groups, dg):
    """Independent formulation: loop over output pixels and taps, one bilinear sample at a time."""
    n, cin, h, w = x.shape
    cout, cin_g, kh, kw = weight.shape
    ho, wo = offset.shape[2:]
    out = torch.zeros(n, cout, ho, wo, dtype=x.dtype)
    cg = cin // dg
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                col = torch.zeros(cin, kh, kw, dtype=x.dtype)
                for i in range(kh):
                    for j in range(kw):
                        t = i * kw + j
                        for gi in range(dg):
                            dy, dx = offset[b, gi * 2 * kh * kw + 2 * t, oy, ox], offset[b, gi * 2 * kh * kw + 2 * t + 1, oy, ox]
                            y = oy * stride[0] - padding[0] + i * dilation[0] + dy
                            xx = ox * stride[1] - padding[1] + j * dilation[1] + dx
                            img = x[b : b + 1, gi * cg : (gi + 1) * cg]
                            v = linear_sample(img, [y.reshape(1, 1), xx.reshape(1, 1)])[0, :, 0]
                            col[gi * cg : (gi + 1) * cg, i, j] = v * mask[b, gi * kh * kw + t, oy, ox]
                for gr in range(groups):
                    og = cout // groups
                    wg = weight[gr * og : (gr + 1) * og]
                    out[b, gr * og : (gr + 1) * og, oy, ox] = (wg * col[gr * cin_g : (gr + 1) * cin_g]).sum((1, 2, 3))
    return out + bias.reshape(1, -1, 1, 1)


def test_zero_offsets_unit_mask_is_conv2d():
    x, offset, mask, weight, bias = _case(seed=1)
    out = modulated_deform_conv2d_reference(x, offset * 0, torch.ones_like(mask), weight, bias, *_args())
    expected = F.conv2d(x, weight, bias, CFG["stride"], CFG["padding"], CFG["dilation"], CFG["groups"])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_integer_offsets_shift_the_input():
    cfg = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, deform_groups=1)
    x, offset, mask, weight, bias = _case(cin=3, cout=2, seed=2, cfg=cfg)
    offset = torch.zeros_like(offset)
    offset[:, 0::2] = 1.0  # dy = +1 for every tap
    out = modulated_deform_conv2d_reference(x, offset, torch.ones_like(mask), weight, bias, *_args(cfg))
    # tap (i, j) of output (oy, ox) reads x[oy + i, ox - 1 + j]: rows below the map are zero
    expected = F.conv2d(F.pad(x, (1, 1, 0, 2)), weight, bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_matches_direct_loop_with_samples_outside():
    x, offset, mask, weight, bias = _case(h=5, w=6, seed=3, spread=3.0)
    out = torch.ops.bevdeploy.modulated_deform_conv2d(x, offset, mask, weight, bias, *_args())
    torch.testing.assert_close(out, _direct(x, offset, mask, weight, bias, *_args()), rtol=1e-5, atol=1e-5)


def test_no_bias_and_non_contiguous():
    x, offset, mask, weight, _ = _case(seed=4)
    x_nc = x.transpose(2, 3).contiguous().transpose(2, 3)
    out = torch.ops.bevdeploy.modulated_deform_conv2d(x_nc, offset, mask, weight, None, *_args())
    torch.testing.assert_close(out, modulated_deform_conv2d_reference(x, offset, mask, weight, None, *_args()))


def test_gradcheck_float64():
    cfg = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, deform_groups=1)
    tensors = _case(cin=2, cout=2, h=3, w=3, seed=5, dtype=torch.float64, cfg=cfg, spread=0.7)
    for t in tensors:
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda *t: torch.ops.bevdeploy.modulated_deform_conv2d(*t, *_args(cfg)), tensors
    )


@pytest.mark.parametrize("scheme,half2,op_type", [
    ("bevdeploy", False, "ModulatedDeformConv2d"),
    ("bevformer_tensorrt", False, "ModulatedDeformableConv2dTRT"),
    ("bevformer_tensorrt", True, "ModulatedDeformableConv2dTRT2"),
    ("mmdeploy", False, "MMCVModulatedDeformConv2d"),
])
def test_onnx_round_trip(scheme, half2, op_type):
    x, offset, mask, weight, bias = _case(seed=6)
    fn = lambda a, o, m: torch.ops.bevdeploy.modulated_deform_conv2d(a, o, m, weight, None, *_args())  # noqa: E731
    model = export_one_op(fn, (x, offset, mask), scheme, half2)
    nodes = custom_nodes(model)
    assert [n.op_type for n in nodes] == [op_type] and len(nodes[0].input) == 5
    (out,) = run_onnx(model, (x, offset, mask))
    expected = modulated_deform_conv2d_reference(x, offset, mask, weight, None, *_args())
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-5, atol=1e-5)
