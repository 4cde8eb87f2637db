"""Text as the model sees it: the Gecko query and document formats, the Table-9 task strings,
tokenizers, the feature names of a batch, and packing texts into rows."""
