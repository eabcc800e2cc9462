// Package xlsx streams rows from one worksheet of an Excel workbook (.xlsx),
// using excelize's streaming row iterator so a large sheet is never held in
// memory whole.
//
// The header is the first row that has a non-blank cell, or the row named by
// [Options.HeaderRow]. Every later row that has a non-blank cell is a data
// row; empty rows are skipped (but, as spreadsheet row numbers, still
// counted). Row.File is "Sheet@book.xlsx" and Row.Line is the spreadsheet row
// number.
//
// # Cell values are raw
//
// Cells are read as their stored (raw) values, not as Excel would display
// them: the reader opens the workbook with excelize.Options{RawCellValue:
// true}. In particular:
//
//   - a date or time is stored by Excel as a serial number of days since
//     1899-12-30 and comes out as that number ("45292" for 2024-01-01,
//     "45292.5" for noon that day); the transform stage converts it, for a
//     column configured as an Excel date (see excelize.ExcelDateToTime);
//   - numbers come out as stored ("5002977278", "0.1"), with no thousands
//     separators, currency or rounding from the cell's number format, and
//     leading zeros a text-formatted cell kept are kept;
//   - booleans come out as "1" or "0";
//   - formula cells give their cached result (the value Excel last
//     calculated), or "" if the workbook was saved without one;
//   - cells of the rare ISO 8601 date type come out as the stored text.
//
// Raw is the row's values written as one CSV record, since a workbook has no
// row text of its own.
package xlsx
