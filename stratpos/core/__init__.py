"""The foundation layer: settings, errors, warehouse connections, time parsing, run ids, DDL types, logging.

It imports nothing else of stratpos (a test checks this); ingestion, expectations, the DAG and the CLI
depend on it, never the other way round. Import the submodules (``stratpos.core.settings`` …); this
package file imports nothing so that ``import stratpos.core`` stays cheap.
"""
