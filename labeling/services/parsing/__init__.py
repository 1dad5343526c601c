"""Reading and checking import files: formats, row shapes and batches of checked items.

Nothing here touches the database or Django's models, so that a parsing process can
import it without setting Django up (`process`); `importing` writes what it checks.
"""
