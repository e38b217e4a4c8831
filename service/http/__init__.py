"""HTTP controllers: parse, call one domain function, serialise."""
