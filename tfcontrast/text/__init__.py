"""Text: corpora, tokenisation in the model, encoders, views, streams, word2vec, retrieval evaluation, export.

==============================  ==========================================================  ===============
name                            what                                                        module
==============================  ==========================================================  ===============
``Documents``                   ids, texts, labels and source metadata of a corpus          ``corpus``
``load_docstrings``             docstrings of installed packages (ships on every machine)   ``docstrings``
``load_text_folder``            ``.txt`` files below a folder                               ``corpus``
``load_jsonl``                  a ``.jsonl`` file with a text field                         ``corpus``
``documents_from_texts``        a Python list of strings                                    ``corpus``
``load_documents``              any of the above from one argument                          ``corpus``
``build_vectorizer``            ``TextVectorization`` adapted on the training texts         ``vectorizer``
``tokenize``                    whole documents to ragged token ids                         ``vectorizer``
``string_encoder``              ``tf.string`` -> embeddings model (saves with the vocab)    ``vectorizer``
``embedder``                    ``texts -> np.ndarray`` through a string model              ``vectorizer``
``text_transformer``            pre-norm Transformer, mean pooling                          ``encoders``
``text_cnn``                    Kim (2014) CNN, max pooling                                 ``encoders``
``declutr_spans`` & co.         DeCLUTR spans, windows, word dropout / deletion             ``views``
``simcse_batches``              SimCSE training stream                                      ``streams``
``declutr_batches``             DeCLUTR training stream                                     ``streams``
``pair_batches``                (query, passage) stream of ``DualEncoder``                  ``streams``
``SkipGram``                    word2vec skip-gram with negative sampling                   ``skipgram``
``evaluate_text_retrieval``     span -> span and summary -> body retrieval                  ``evaluation``
``tfidf_embedder``              the TF-IDF baseline                                         ``evaluation``
``export_text_model``           SavedModel with ``embed`` and ``lookup`` on raw strings     ``export``
``prepare_text_data``           load, split, adapt the vectorizer, tokenise: ``TextData``   ``pipeline``
``text_encoder``                an encoder by name                                          ``pipeline``
``evaluate_text_encoder``       held-out retrieval of an encoder next to baselines          ``pipeline``
``export_text_index``           SavedModel whose ``lookup`` returns document names          ``pipeline``
==============================  ==========================================================  ===============

The methods that train sentence encoders, :class:`tfcontrast.models.SimCSE`
and :class:`tfcontrast.models.DeCLUTR`, live with the other models.

    import tfcontrast as tfc
    train, held_out = tfc.data.load_docstrings().split(0.2, seed=0)
    vectorizer = tfc.text.build_vectorizer(train.texts, vocab_size=20000, sequence_length=128)
    encoder = tfc.models.encoders.text_transformer(20000, 128, dim=256, depth=4, heads=4)
    model = tfc.models.SimCSE(encoder, temperature=0.05)
    model.compile(optimizer="adam")
    model.fit(tfc.text.simcse_batches(tfc.text.tokenize(vectorizer, train.texts), 64, 128), steps_per_epoch=500)
    embed = tfc.text.embedder(tfc.text.string_encoder(vectorizer, encoder))
    tfc.text.evaluate_text_retrieval(embed, held_out)
"""

from tfcontrast.text.corpus import Documents, documents_from_texts, load_documents, load_jsonl, load_text_folder
from tfcontrast.text.docstrings import load_docstrings
from tfcontrast.text.encoders import text_cnn, text_transformer
from tfcontrast.text.evaluation import (
    RetrievalTask,
    evaluate_text_retrieval,
    format_table,
    retrieval_tasks,
    tfidf_embedder,
)
from tfcontrast.text.export import export_text_model
from tfcontrast.text.pipeline import TextData, evaluate_text_encoder, export_text_index, prepare_text_data, text_encoder
from tfcontrast.text.skipgram import SkipGram, skipgram_dataset, skipgram_pairs
from tfcontrast.text.streams import declutr_batches, pair_batches, simcse_batches
from tfcontrast.text.vectorizer import build_vectorizer, embedder, string_encoder, token_counts, tokenize
from tfcontrast.text.views import declutr_spans, word_deletion, word_dropout

__all__ = [
    "Documents",
    "RetrievalTask",
    "SkipGram",
    "TextData",
    "build_vectorizer",
    "declutr_batches",
    "declutr_spans",
    "documents_from_texts",
    "embedder",
    "evaluate_text_encoder",
    "evaluate_text_retrieval",
    "export_text_index",
    "export_text_model",
    "format_table",
    "load_docstrings",
    "load_documents",
    "load_jsonl",
    "load_text_folder",
    "pair_batches",
    "prepare_text_data",
    "retrieval_tasks",
    "simcse_batches",
    "skipgram_dataset",
    "skipgram_pairs",
    "string_encoder",
    "text_cnn",
    "text_encoder",
    "text_transformer",
    "tfidf_embedder",
    "token_counts",
    "tokenize",
    "word_deletion",
    "word_dropout",
]
