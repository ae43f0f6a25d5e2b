"""sdrop_bench's report, split as google/benchmark's tools/gbench splits its compare tool:

    parse        Google Benchmark JSON -> named records (BenchRun, Dropout, Reference, Result)
    model        lookups of those records, the limits (docs/performance.md), ratios, bytes
    targets      the issue-5 targets, checked against the model
    fmt          how times, ratios and rates are written
    render_cpu   the CPU headline and tables (markdown)
    render_gpu   the GPU headline and tables (markdown)
    torch_parse  bench/frameworks/torch_bench.py's JSON -> records (TorchRun, TorchCase, ...)
    torch_model  its ratios torch / sdrop, the fresh-output shares, the issue-11 targets
    render_torch the section "PyTorch: sdrop.torch vs F.dropout2d" (markdown)
    document     bench.md put together from all of them
    plot         bench.png (matplotlib, optional)
    cli          report.py's command line
"""
