"""Parameter and compute accounting, against an independent count from the architecture table.

``independent_count`` below is written from docs/facts.md's "Architecture" table (kernels,
size/stride/pad, groups, pooling 3/2 after conv1, conv2, conv5, FC widths) with the textbook
formulas; it calls nothing in minialexnet. The published totals (docs/facts.md, "Counts") check
the calculator; the calculator then checks ``summarize`` layer by layer.
"""

from __future__ import annotations

import numpy as np
import pytest

from minialexnet import build_alexnet, summarize

# (kernels, kernel size, stride, padding, groups) for conv1..conv5, and the input side.
ARCHITECTURES = {
    "ungrouped": (
        227,
        [
            (96, 11, 4, 0, 1),
            (256, 5, 1, 2, 1),
            (384, 3, 1, 1, 1),
            (384, 3, 1, 1, 1),
            (256, 3, 1, 1, 1),
        ],
    ),
    "paper": (
        227,
        [
            (96, 11, 4, 0, 1),
            (256, 5, 1, 2, 2),
            (384, 3, 1, 1, 1),
            (384, 3, 1, 1, 2),
            (256, 3, 1, 1, 2),
        ],
    ),
    "torchvision": (
        224,
        [
            (64, 11, 4, 2, 1),
            (192, 5, 1, 2, 1),
            (384, 3, 1, 1, 1),
            (256, 3, 1, 1, 1),
            (256, 3, 1, 1, 1),
        ],
    ),
}
FC_WIDTHS = (4096, 4096, 1000)

# docs/facts.md, "Counts": total params, conv params, forward MACs, conv MAC share.
PUBLISHED = {
    "ungrouped": (62_378_344, 3_747_200, 1_135_256_096, 0.9484),
    "paper": (60_965_224, 2_334_080, 724_406_816, 0.9191),
    "torchvision": (61_100_840, 2_469_696, 714_188_480, 0.9179),
}
PUBLISHED_UNGROUPED_PER_LAYER = {
    "conv1": 34_944, "conv2": 614_656, "conv3": 885_120, "conv4": 1_327_488,
    "conv5": 884_992, "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000,
}  # fmt: skip


def independent_count(variant: str) -> dict[str, tuple[int, int]]:
    """{layer: (parameters, forward MACs)} from the architecture table alone.

    conv: out side = (side + 2*pad - k) // stride + 1; params = F * (C/G) * k * k + F;
          MACs = F * out_side^2 * (C/G) * k * k.   max-pool 3/2: side = (side - 3) // 2 + 1.
    fc:   params = D_in * D_out + D_out; MACs = D_in * D_out.
    """
    side, convs = ARCHITECTURES[variant]
    channels, counts = 3, {}
    for i, (F, k, stride, pad, groups) in enumerate(convs, start=1):
        side = (side + 2 * pad - k) // stride + 1
        weights_per_filter = (channels // groups) * k * k
        counts[f"conv{i}"] = (F * weights_per_filter + F, F * side * side * weights_per_filter)
        if i in (1, 2, 5):
            side = (side - 3) // 2 + 1
        channels = F
    width = channels * side * side
    for name, out in zip(("fc6", "fc7", "fc8"), FC_WIDTHS, strict=True):
        counts[name] = (width * out + out, width * out)
        width = out
    return counts


@pytest.mark.parametrize("variant", list(ARCHITECTURES))
def test_the_independent_count_reproduces_the_published_totals(variant):
    counts = independent_count(variant)
    params, conv_params, macs, conv_mac_share = PUBLISHED[variant]
    assert sum(p for p, _ in counts.values()) == params
    assert sum(p for name, (p, _) in counts.items() if name.startswith("conv")) == conv_params
    assert sum(m for _, m in counts.values()) == macs
    conv_macs = sum(m for name, (_, m) in counts.items() if name.startswith("conv"))
    assert round(conv_macs / macs, 4) == conv_mac_share


@pytest.mark.parametrize("variant", list(ARCHITECTURES))
def test_summary_matches_the_independent_count_layer_by_layer(alexnet, variant):
    summary = summarize(alexnet(variant))
    counts = independent_count(variant)
    rows = {r.name: r for r in summary.rows}
    for name, (params, macs) in counts.items():
        assert (rows[name].params, rows[name].macs) == (params, macs), name
    # Every other layer (ReLU, LRN, pooling, dropout, flatten) has no weights and no MACs.
    others = [r for r in summary.rows if r.name not in counts]
    assert others and all(r.params == 0 and r.macs == 0 for r in others)
    params, conv_params, macs, conv_mac_share = PUBLISHED[variant]
    assert summary.total_params == params
    assert summary.total_macs == macs
    assert summary.conv_param_share == pytest.approx(conv_params / params, rel=1e-12)
    assert round(summary.conv_mac_share, 4) == conv_mac_share


def test_ungrouped_per_layer_and_shares_as_published(alexnet):
    summary = summarize(alexnet("ungrouped"))
    rows = {r.name: r for r in summary.rows}
    assert {name: rows[name].params for name in PUBLISHED_UNGROUPED_PER_LAYER} == (
        PUBLISHED_UNGROUPED_PER_LAYER
    )
    assert f"{summary.conv_param_share:.2%}" == "6.01%"
    assert f"{summary.conv_mac_share:.2%}" == "94.84%"
    # The spatial story: 227 -> conv1 55 -> pool 27 -> conv2 27 -> pool 13 -> ... -> pool5 6.
    assert rows["conv1"].output_shape == (96, 55, 55)
    assert rows["pool1"].output_shape == (96, 27, 27)
    assert rows["pool2"].output_shape == (256, 13, 13)
    assert rows["pool5"].output_shape == (256, 6, 6)
    assert rows["flatten"].output_shape == (9216,)
    # Activation memory per image: 96 * 55 * 55 float32 values for conv1's output.
    assert rows["conv1"].activation_bytes == 96 * 55 * 55 * 4
    assert summarize(alexnet("ungrouped"), dtype=np.float64).rows[0].activation_bytes == (
        96 * 55 * 55 * 8
    )


def test_table_prints_the_totals_and_shares(alexnet):
    table = summarize(alexnet("ungrouped")).table()
    assert "62,378,344" in table and "1,135,256,096" in table
    assert "6.01% of parameters" in table and "94.84% of MACs" in table
    assert all(name in table for name in PUBLISHED_UNGROUPED_PER_LAYER)


@pytest.mark.parametrize("variant", ["mini", "mini64"])
def test_summary_shapes_are_what_the_forward_produces(variant):
    # The accounting never runs the net; here we do, layer by layer, and compare.
    model = build_alexnet(variant)
    summary = summarize(model)
    h = np.zeros((1, *model.input_shape), dtype=np.float32)
    for row, (name, layer) in zip(summary.rows, model.layers.items(), strict=True):
        h = layer.forward(h)
        assert row.name == name and row.output_shape == h.shape[1:], name
        assert row.activation_bytes == h[0].nbytes, name
    assert summary.total_params == sum(p.size for p in model.params().values())
