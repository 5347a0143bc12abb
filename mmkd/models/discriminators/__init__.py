from .self_attention import SAGANSelfAttention
from .skd_discriminator import SKDDiscriminator
from .spectral_norm import AuthorsSpectralNorm, spectral_norm

__all__ = [
    'AuthorsSpectralNorm', 'SAGANSelfAttention', 'SKDDiscriminator',
    'spectral_norm'
]
