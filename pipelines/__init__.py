"""What moves data: the Beam transforms and the speed (streaming) pipeline."""
