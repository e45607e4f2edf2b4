"""InfraGenius developer tools: the local control plane, its scenarios, the docs generator and the
helpers benchmarks and tests share. Not part of the operator wheel or image (``pip install -e ./devtools``)."""
