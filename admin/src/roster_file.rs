//! A roster file as the operator has it: its bytes made into the UTF-8 text the API takes.

/// A roster file's text: UTF-8, with the byte-order mark spreadsheets add removed. Anything else
/// (GBK, as spreadsheets in China often save CSV) is refused with where and how to convert it.
pub fn text_of(bytes: Vec<u8>, name: &str) -> Result<String, String> {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        format!(
            "{name}: not UTF-8 text (line {line}, byte {at}); a spreadsheet may have saved it as \
             GBK: save it as \"CSV UTF-8\", or convert it with \
             `iconv -f GBK -t UTF-8 {name} > {name}.utf8.csv` and import that"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gbk_file_is_refused_with_how_to_convert_it_and_a_bom_is_dropped() {
        // "id,name\np-1,张三" in GBK: 张 = D5 C5, 三 = C8 FD.
        let gbk = b"id,name\np-1,\xD5\xC5\xC8\xFD\n".to_vec();
        let e = text_of(gbk, "people.csv").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("iconv -f GBK -t UTF-8 people.csv"), "{e}");
        let bom = b"\xEF\xBB\xBFid,name\np-1,\xE5\xBC\xA0\xE4\xB8\x89\n".to_vec();
        assert_eq!(text_of(bom, "p.csv").unwrap(), "id,name\np-1,张三\n");
    }
}
