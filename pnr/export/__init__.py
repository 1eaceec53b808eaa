"""Exports of fitted/edited fields: meshes (marching cubes) and coloured point clouds (`pnr export`)."""
