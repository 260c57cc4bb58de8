    nop # café
