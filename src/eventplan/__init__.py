"""eventplan: make a product-analytics tracking plan real.

The data flows capture → validate → store → query → web; each is a package here.
"""

__version__ = "0.1.0"
