import ProvenanceCLI

await Provenance.main()
