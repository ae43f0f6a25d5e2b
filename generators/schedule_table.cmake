# Schedule knobs per kernel variant: SDROP_SCHEDULE_<isa>_<op>_<shape>_<dtype>.
# Variants not listed use the generator's defaults (vector_factor=2 task_elems=65536
# draws=block tail=predicate). Rewritten by the tuning sweep; hand edits are fine.
