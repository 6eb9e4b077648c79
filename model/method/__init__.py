"""The paper's method: the noise schedule, AddNoise / RemoveNoise, and the samplers (Algorithm 1 and its
ablations), each equation in one function. Stateless; networks come in as callables over whole volumes."""
