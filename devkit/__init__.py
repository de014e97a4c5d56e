"""Everything that is not the product: the development engine, the stand-ins, `make run` and the example
runner. Tests and the benchmark import it; the wheel and the container image leave it out."""
