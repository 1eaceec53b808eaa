"""The built-in procedural object domain: grammar (spec <-> caption), exact renderer, edit benchmark."""
