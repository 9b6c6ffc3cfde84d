import ArgumentParser
import ProvenanceCLI

Provenance.main()
