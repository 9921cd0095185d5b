// Package extract turns uploaded documents into the text the chunker reads: paragraphs
// separated by blank lines, headings as markdown headings (so chunks start at them and
// carry their section). HTML is extracted at chunking time from the stored page; DOCX at
// upload, since its bytes are not text; PDF by the ingest worker, with poppler-utils run
// as limited subprocesses, each page's text after a marker that gives chunks their page.
package extract
