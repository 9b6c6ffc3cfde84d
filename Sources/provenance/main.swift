import ProvenanceCLI

Provenance.main()
