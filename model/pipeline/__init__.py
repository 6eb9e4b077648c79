"""One case end to end: the enhancer (networks + settings -> enhanced volume and the plan it ran), reading and
writing a case, the run record beside every output set, output-path safety and QC reports."""
