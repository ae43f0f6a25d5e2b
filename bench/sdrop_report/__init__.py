"""sdrop_bench's report, split as google/benchmark's tools/gbench splits its compare tool:

    parse        Google Benchmark JSON -> named records (BenchRun, Dropout, Reference, Epilogue,
                 Result)
    model        lookups of those records, the limits (docs/performance.md), ratios, bytes
    targets      the issue-5 targets (issue 12's, the fused epilogue's), checked against the model
    fmt          how times, ratios and rates are written
    render_cpu   the CPU headline and tables (markdown)
    render_gpu   the GPU headline and tables (markdown)
    render_epilogue  the section "Fused epilogue": sdrop_epilogue_forward vs the unfused
                 passes, libtorch eager and its traffic limit, sdrop_epilogue_backward vs
                 autograd's unfused passes, with the targets (markdown)
    torch_parse  bench/frameworks/torch_bench.py's JSON -> records (TorchRun, TorchCase, ...)
    torch_model  its ratios torch / sdrop, the fresh-output shares, the issue-11 targets
    render_torch the section "PyTorch: sdrop.torch vs F.dropout2d" (markdown)
    document     bench.md put together from all of them
    plot         bench.png (matplotlib, optional)
    cli          report.py's command line
"""
