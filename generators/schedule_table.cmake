# Schedule knobs per kernel variant: SDROP_SCHEDULE_<isa>_<op>_<shape>_<dtype>.
# Variants not listed use the generator's defaults (vector_factor=2 task_elems=65536
# draws=block tail=predicate). Rewritten by the tuning sweep; hand edits are fine.
# -- runtime thresholds (bench/tune.py --thresholds) --
# Measured 2026-12-04 on 2 threads, x86_64, medians of 3 rounds of `sdrop_bench --sweep`.
# output bytes | default mode: 1 thread | 2 threads, reading | 2 threads, skipping | multiply: 1 / 2 threads   (us, medians of 3 rounds)
#         4096 |                   0.29 |               0.32 |                0.42 | 0.31 / 0.33
#         8192 |                   0.33 |               0.35 |                0.51 | 0.34 / 0.37
#        16384 |                   0.42 |               0.46 |                0.75 | 0.43 / 0.45
#        32768 |                   0.75 |               0.77 |                1.17 | 0.75 / 0.79
#        65536 |                   1.18 |               1.21 |                2.05 | 1.18 / 1.21
#       131072 |                   2.04 |               2.09 |                3.67 | 2.04 / 2.08
#       262144 |                   2.74 |               2.79 |                4.19 | 2.81 / 2.81
#       524288 |                   7.99 |               3.15 |                4.50 | 8.22 / 3.11
#      1048576 |                  19.84 |               8.15 |                7.63 | 19.31 / 8.10
#      2097152 |                  43.05 |              21.02 |               17.27 | 42.36 / 20.93
#      4194304 |                  70.36 |              43.52 |               34.01 | 83.48 / 43.77
#      8388608 |                 142.04 |              73.92 |               66.53 | 173.95 / 86.76
#     16777216 |                 486.89 |             245.49 |              244.87 | 490.58 / 239.93
#     33554432 |                1300.61 |             987.02 |              762.16 | 1273.85 / 992.10
set(SDROP_TUNED_SERIAL_BYTES 262144)
set(SDROP_TUNED_SKIP_DROPPED_BYTES 524288)
