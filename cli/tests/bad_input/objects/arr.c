long arr[4];
long get_arr(long i) { return arr[i]; }
