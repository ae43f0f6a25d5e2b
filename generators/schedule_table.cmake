# Schedule knobs per kernel variant: SDROP_SCHEDULE_<isa>_<op>_<shape>_<dtype>.
# Variants not listed use the generator's defaults (vector_factor=2 task_elems=65536
# draws=block tail=predicate). Rewritten by the tuning sweep; hand edits are fine.
# -- runtime thresholds (bench/tune.py --thresholds) --
# Measured 2026-12-04 on 2 threads, x86_64, medians of 3 rounds of `sdrop_bench --sweep`.
# output bytes | default mode: 1 thread | 2 threads, reading | skipping | memset | multiply: 1 / 2 threads   (us, medians of 3 rounds)
#         4096 |                   0.28 |               0.30 |     0.38 |   0.39 | 0.29 / 0.31
#         8192 |                   0.32 |               0.32 |     0.47 |   0.50 | 0.32 / 0.35
#        16384 |                   0.42 |               0.44 |     0.71 |   0.74 | 0.42 / 0.46
#        32768 |                   0.75 |               0.75 |     1.16 |   1.19 | 0.73 / 0.78
#        65536 |                   1.22 |               1.21 |     1.99 |   2.05 | 1.19 / 1.23
#       131072 |                   2.11 |               2.08 |     3.67 |   3.73 | 2.10 / 2.11
#       262144 |                   2.99 |               2.84 |     4.14 |   4.26 | 3.04 / 2.88
#       524288 |                   8.63 |               3.32 |     4.56 |   4.83 | 8.75 / 3.36
#      1048576 |                  20.37 |               8.75 |     7.53 |   7.97 | 19.75 / 8.81
#      2097152 |                  43.49 |              21.30 |    17.27 |  17.44 | 42.84 / 21.66
#      4194304 |                  73.95 |              44.65 |    33.30 |  34.37 | 86.91 / 44.30
#      8388608 |                 150.16 |              81.31 |    69.52 | 291.21 | 180.97 / 80.12
#     16777216 |                 486.25 |             245.12 |   263.94 | 451.33 | 501.60 / 247.61
#     33554432 |                1257.30 |             993.88 |   784.75 | 983.00 | 1272.64 / 1048.77
#     67108864 |                3015.16 |            2508.86 |  2016.35 | 2070.01 | 3082.66 / 2601.76
#    134217728 |                6697.39 |            5742.92 |  4424.94 | 3988.44 | 6613.13 / 5782.89
set(SDROP_TUNED_SERIAL_BYTES 65536)
set(SDROP_TUNED_SKIP_DROPPED_BYTES 524288)
set(SDROP_TUNED_MEMSET_DROPPED_BYTES 67108864)
