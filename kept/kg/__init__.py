"""Knowledge graphs: readers for real dumps, the on-disk store, graph adapters."""
