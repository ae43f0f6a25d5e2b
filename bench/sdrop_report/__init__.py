"""sdrop_bench's report, split as google/benchmark's tools/gbench splits its compare tool:

    parse        Google Benchmark JSON -> named records (BenchRun, Dropout, Reference, Result)
    model        lookups of those records, the limits (docs/performance.md), ratios, bytes
    targets      the issue-5 targets, checked against the model
    fmt          how times, ratios and rates are written
    render_cpu   the CPU headline and tables (markdown)
    render_gpu   the GPU headline and tables (markdown)
    document     bench.md put together from both
    plot         bench.png (matplotlib, optional)
    cli          report.py's command line
"""
