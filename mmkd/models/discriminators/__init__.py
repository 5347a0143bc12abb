from .self_attention import SAGANSelfAttention
from .skd_discriminator import SKDDiscriminator

__all__ = ['SAGANSelfAttention', 'SKDDiscriminator']
